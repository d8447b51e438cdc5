"""Demand measurement: turn request and token rates into replica-units of work.

Tokens matter more than requests: a 7k-token prompt costs a replica ~50x what a 150-token one
does. One replica-unit is the work one saturated replica does per second, so a load of 2.4 means
"2.4 replicas flat out". Prefill and decode share the GPU under continuous batching, so their
costs add: load = prompt_tok/s / P + generated_tok/s / G, with P and G the per-replica capacities
in `ScalingPolicy`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmscale.api import defaults
from llmscale.scaling.types import DecisionInputs, ScalingPolicy, WorkloadState

# Used until the first engine sample tells us the real mix: the same documented priors the
# capacity model is built at (llmscale.api.defaults).
DEFAULT_PROMPT_TOKENS = defaults.PRIOR_PROMPT_TOKENS
DEFAULT_GENERATION_TOKENS = defaults.PRIOR_GENERATION_TOKENS
# The shortest time over which a backlog is planned to drain.
BACKLOG_DRAIN_SECONDS = 5.0
"""(One default decision interval.) The backlog is drained over one horizon (cold start +
interval); this floor only matters for near-instant cold starts. It was 10 s: with a 5 s cold
start (the e2e tests) a 12-request burst then asked for 2 replicas where 3 drain it in time."""


@dataclass(frozen=True)
class Demand:
    load_replicas: float
    """Replica-units of work arriving per second: the larger of the engines' token rates and the
    gateway's windowed arrivals x the learned work per request (the gateway is the only signal
    while no engine is Ready; the engines see the real token counts)."""
    burst_load_replicas: float
    """The larger of `load_replicas` and the last interval's gateway arrivals (panic window)."""
    backlog_replicas: float
    """Replicas needed to drain what waits (engine queues + gateway hold) within the drain time.
    Kept apart from the arrival rate: a backlog is a deficit, not demand to forecast."""
    request_rate_rps: float
    """Arrivals per second: the gateway's count when there is one, else the engines' rate."""
    work_per_request_replica_seconds: float
    admission_burst: bool = False
    """The engines reported more work than the Ready replicas can do (`ENGINE_WORK_CEILING`): an
    admission burst; its token counts say nothing about the request mix."""
    idle: bool = False
    """Positive proof of idleness at this instant: metrics present and nothing arriving,
    running, waiting or held."""


def work_per_request(policy: ScalingPolicy, prompt_tokens: float, generation_tokens: float) -> float:
    """Replica-seconds one request costs (1 / the saturation request rate at these lengths)."""
    return (
        prompt_tokens / policy.capacity_prompt_tokens_per_second
        + generation_tokens / policy.capacity_generation_tokens_per_second
    )


def engine_load(inputs: DecisionInputs, policy: ScalingPolicy) -> float:
    """Replica-units of work the engines report doing (token rates over the prior capacities)."""
    return (
        _clean(inputs.prompt_tokens_per_second) / policy.capacity_prompt_tokens_per_second
        + _clean(inputs.generation_tokens_per_second) / policy.capacity_generation_tokens_per_second
    )


def mean_lengths(workload: WorkloadState) -> tuple[float, float]:
    if workload.mean_prompt_tokens > 0 or workload.mean_generation_tokens > 0:
        return workload.mean_prompt_tokens, workload.mean_generation_tokens
    return DEFAULT_PROMPT_TOKENS, DEFAULT_GENERATION_TOKENS


ENGINE_WORK_CEILING = 1.5
"""Engine-reported work above this multiple of the Ready replicas' saturated throughput is an
admission burst (prompt tokens count when a batch of queued requests is admitted), not work."""


BURST_COUNT_SIGMAS = 2.0
"""How far below the last interval's arrival count the burst signal is taken: the count less
two standard deviations of a Poisson count (sqrt of the count), about its one-sided 97.7 %
lower bound. A statistical convention, not a fitted value: it keeps Poisson noise in a few
seconds of light traffic (3 +- 1.7 arrivals) from reading as a burst, while a real burst
(60 arrivals where 10 were expected) passes nearly whole (60 - 15.5)."""


def burst_rate_lower_bound(recent_rps: float, interval_seconds: float) -> float:
    """The panic window's arrival rate: the Poisson lower bound of the last interval's count."""
    count = max(0.0, recent_rps) * interval_seconds
    if count <= 0 or interval_seconds <= 0:
        return 0.0
    return max(0.0, count - BURST_COUNT_SIGMAS * math.sqrt(count)) / interval_seconds


def measure(
    inputs: DecisionInputs,
    policy: ScalingPolicy,
    workload: WorkloadState,
    *,
    drain_seconds: float,
    throughput_per_replica: float = 1.0,
) -> Demand:
    """`drain_seconds`: how soon the backlog should be gone; the decision horizon (a replica
    added now helps only after a cold start). `throughput_per_replica`: a saturated replica's
    work in the prior's replica-units (the capacity model's learned throughput scale)."""
    prompt_tps = _clean(inputs.prompt_tokens_per_second)
    generation_tps = _clean(inputs.generation_tokens_per_second)
    engine_rps = _clean(inputs.request_rate_rps)
    gateway_rps = _clean(inputs.gateway_arrivals_rps) if inputs.gateway_arrivals_rps is not None else 0.0
    prompt_tokens, generation_tokens = mean_lengths(workload)
    per_request = work_per_request(policy, prompt_tokens, generation_tokens)

    engine_work = prompt_tps / policy.capacity_prompt_tokens_per_second + (
        generation_tps / policy.capacity_generation_tokens_per_second
    )
    admission_burst = False
    if inputs.ready_replicas > 0:
        ceiling = ENGINE_WORK_CEILING * inputs.ready_replicas * max(1.0, throughput_per_replica)
        admission_burst = engine_work > ceiling
        engine_work = min(engine_work, ceiling)
    recent_rps = gateway_rps
    if inputs.gateway_recent_arrivals_rps is not None:
        recent_rps = _clean(inputs.gateway_recent_arrivals_rps)
    recent_burst_rps = burst_rate_lower_bound(recent_rps, policy.decision_interval_seconds)
    gateway_load = gateway_rps * per_request
    request_rate = recent_rps if inputs.gateway_arrivals_rps is not None else engine_rps
    backlog = _clean(inputs.num_requests_waiting) + max(0, inputs.gateway_queue_depth)
    load = max(engine_work, gateway_load)
    # The last interval's arrivals see a burst first but carry its noise: the panic window only.
    burst_load = max(load, recent_burst_rps * per_request)
    # What will wait when a replica added now is Ready: today's backlog plus what arrives beyond
    # the Ready replicas' saturation meanwhile (1.0 replica-unit each); drained over one horizon.
    drain = max(drain_seconds, BACKLOG_DRAIN_SECONDS)
    overflow = max(0.0, burst_load - max(0, inputs.ready_replicas) * throughput_per_replica) * drain
    backlog_load = (backlog * per_request + overflow) / drain

    idle = (
        inputs.metrics_available
        and engine_rps == 0.0
        and gateway_rps == 0.0
        and recent_rps == 0.0
        and prompt_tps == 0.0
        and generation_tps == 0.0
        and _clean(inputs.num_requests_running) == 0.0
        and backlog == 0
        and not inputs.activation_requested
    )
    return Demand(
        load_replicas=load,
        burst_load_replicas=burst_load,
        backlog_replicas=backlog_load,
        request_rate_rps=request_rate,
        work_per_request_replica_seconds=per_request,
        admission_burst=admission_burst,
        idle=idle,
    )


def _clean(value: float | None) -> float:
    """NaN/Inf/negative rates (counter resets, empty vectors) count as no signal, i.e. zero."""
    if value is None or not math.isfinite(value) or value < 0:
        return 0.0
    return float(value)

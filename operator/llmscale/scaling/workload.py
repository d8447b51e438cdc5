"""Workload statistics the strategy rules read: request mix, idle periods, wake-up cost, peak.

All accumulators forget with a one-day time constant, so the rules follow a deployment whose
traffic changes character (a batch job ends, a new client arrives) within a day.

Idle periods are counted only on positive proof (metrics present, nothing arriving, running,
waiting or held). An idle period longer than the cold start is one scale-to-zero could have used;
the busy period after it is a wake-up, and the requests arriving within one cold start of it are
the ones that would have waited for a replica (they spend the SLO error budget).
"""

from __future__ import annotations

import math

from llmscale.scaling import keepalive
from llmscale.scaling.demand import Demand
from llmscale.scaling.types import DecisionInputs, ScalingPolicy, WorkloadState

MEMORY_SECONDS = 86_400.0
PEAK_MEMORY_SECONDS = 6 * 3600.0
"""Warm provisions for the decaying peak; a peak is forgotten (to 1/e) after six hours."""
TOKEN_MIX_SECONDS = 600.0
"""Memory of the request-mix sums: ten minutes of admissions and completions balance out."""
MIN_MIX_REQUESTS = 20.0


def update(
    state: WorkloadState,
    policy: ScalingPolicy,
    inputs: DecisionInputs,
    demand: Demand,
    *,
    cold_start_seconds: float,
    now: float,
) -> None:
    if state.first_time is None:
        state.first_time = now
    if inputs.ready_replicas > 0 and inputs.ready_replicas >= inputs.current_replicas:
        if state.settled_since is None:
            state.settled_since = now
    else:
        state.settled_since = None
    dt = 0.0 if state.last_time is None else max(0.0, now - state.last_time)
    # A long silence of the loop itself (operator down) is not evidence about the workload.
    dt = min(dt, 10.0 * policy.decision_interval_seconds)
    state.last_time = now
    forget = math.exp(-dt / MEMORY_SECONDS)
    state.observed_seconds = state.observed_seconds * forget + dt
    state.idle_seconds_long *= forget
    state.wakeups *= forget
    state.wake_requests *= forget
    state.total_requests = state.total_requests * forget + demand.request_rate_rps * dt

    if not demand.admission_burst:
        _learn_mix(state, inputs, dt=max(dt, policy.decision_interval_seconds))
    keepalive.decay(state, forget)
    state.burst_requests *= forget
    state.burst_count *= forget
    state.misses_estimated *= forget
    if inputs.ready_replicas == 0 and inputs.current_replicas >= 0:
        # Requests that arrive while nothing is Ready wait at least the rest of a cold start.
        state.misses_estimated += demand.request_rate_rps * dt

    decay = math.exp(-dt / PEAK_MEMORY_SECONDS)
    state.peak_load = max(demand.load_replicas, state.peak_load * decay)

    if state.wake_window_end is not None:
        if now <= state.wake_window_end:
            state.wake_requests += demand.request_rate_rps * dt
        else:
            state.wake_window_end = None
    if state.burst_window_end is not None:
        if now <= state.burst_window_end:
            state.burst_requests += demand.request_rate_rps * dt
        else:
            state.burst_window_end = None

    if demand.idle:
        if state.idle_since is None:
            state.idle_since = now
        state.busy_since = None
        return
    if not inputs.metrics_available:
        # No proof either way: the idle period (if any) is not counted, nor a wake-up.
        state.idle_since = None
        return
    if state.idle_since is not None:
        gap = now - state.idle_since
        if gap >= policy.decision_interval_seconds:
            keepalive.record_gap(state, gap)
            state.burst_count += 1.0
            state.burst_window_end = now + cold_start_seconds
            state.burst_requests += demand.request_rate_rps * dt
            state.busy_peak_load = 0.0
            state.last_gap_seconds = gap
        if gap > cold_start_seconds:
            state.idle_seconds_long += gap
            state.wakeups += 1.0
            state.wake_window_end = now + cold_start_seconds
            state.wake_requests += demand.request_rate_rps * dt
        state.idle_since = None
    if state.busy_since is None:
        state.busy_since = now
    state.last_busy_time = now


def _learn_mix(state: WorkloadState, inputs: DecisionInputs, *, dt: float) -> None:
    """Tokens per request from the engines' counters, always (under load too).

    Prompt tokens count at admission and requests at completion, so a single window's ratio is
    skewed while work backs up or drains; the ratio of sums over `TOKEN_MIX_SECONDS` is not (over
    a long window admissions and completions balance). Until `MIN_MIX_REQUESTS` requests have
    been seen the defaults stand. Requests still running count as admitted: early on, with long
    prompts and long decodes, completions lag admissions by many requests."""
    rate = inputs.request_rate_rps
    if not inputs.metrics_available or not math.isfinite(rate) or rate <= 0:
        return
    prompt, generation = inputs.prompt_tokens_per_second, inputs.generation_tokens_per_second
    if not (math.isfinite(prompt) and math.isfinite(generation)) or prompt < 0 or generation < 0:
        return
    keep = math.exp(-dt / TOKEN_MIX_SECONDS)
    state.mix_requests = state.mix_requests * keep + rate * dt
    state.mix_prompt_tokens = state.mix_prompt_tokens * keep + prompt * dt
    state.mix_generation_tokens = state.mix_generation_tokens * keep + generation * dt
    # Prompt tokens of the requests still running are already counted, their completions are
    # not: count them in the denominator (admitted = completed + running, over the memory).
    running = inputs.num_requests_running if math.isfinite(inputs.num_requests_running) else 0.0
    admitted = state.mix_requests + max(0.0, running)
    if admitted >= MIN_MIX_REQUESTS:
        state.mean_prompt_tokens = state.mix_prompt_tokens / admitted
        state.mean_generation_tokens = state.mix_generation_tokens / admitted


def idle_seconds_now(state: WorkloadState, now: float) -> float:
    """How long idleness has been positively proven without interruption (0 when busy/unknown)."""
    return 0.0 if state.idle_since is None else max(0.0, now - state.idle_since)


def settled_seconds(state: WorkloadState, now: float) -> float:
    """How long every provisioned replica has been Ready (0 while some start or none exist)."""
    return 0.0 if state.settled_since is None else max(0.0, now - state.settled_since)

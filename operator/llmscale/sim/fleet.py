"""The fleet simulator: a trace through a gateway and a policy-sized fleet of replicas.

Time advances in fixed steps of `step_seconds`. Per step: the policy ticks when due and
replicas are created (ready one cold start later) or drained; starting replicas whose cold
start is over become ready; arrivals go through the gateway, which holds them while no
replica is ready (failing those held longer than `hold_timeout_seconds` or beyond the queue
limit) and otherwise routes each to the ready replica with the fewest outstanding requests;
every replica advances (see `llmscale.sim.replica`); fleet metrics are recorded for the
policy's Prometheus view. A replica costs GPU time from creation to deletion (a drained
replica is deleted when its last request finishes); `gpus` GPUs per replica.

Equal start: every policy starts from the same fleet, `initial_replicas` Ready replicas at
t = 0 (default 1: a deployment that has been serving at its floor). Whatever a policy asks for
beyond them at its first tick cold-starts like any later scale-up.

One cold-start distribution: every replica created during the run is Ready
cold_start x U(1 - jitter, 1 + jitter) after its creation, drawn from one random stream per
seed, so the k-th cold start of every policy lasts exactly as long.

Signals: engine and gateway series reach every policy through `PrometheusModel` (scrape
intervals, rate window, evaluation lag). Only the gateway's wake signal (arrivals since the
previous tick, `gateway_arrivals_last_tick`) is immediate: the gateway hands it to the operator
directly when it holds a request at zero, as the activator does in Knative.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from llmscale.api import defaults
from llmscale.api.duration import parse_duration_seconds
from llmscale.sim.capacity import PRIOR_GENERATION_TOKENS, PRIOR_PROMPT_TOKENS, planned_capacity_rps
from llmscale.sim.observe import (
    ITL_BUCKETS_SECONDS,
    TTFT_BUCKETS_SECONDS,
    MetricsRecorder,
    PrometheusModel,
    bucket_increase,
    counter_rate,
    histogram_quantile,
)
from llmscale.sim.perfmodel import ReplicaPerformanceModel
from llmscale.sim.policy import FleetObservation, SimContext, SimPolicy, TraceSummary
from llmscale.sim.replica import DRAINING, READY, STARTING, SimReplica
from llmscale.sim.results import PolicyResult, build_result
from llmscale.sim.traces import Trace


@dataclass(frozen=True)
class FleetConfig:
    model: ReplicaPerformanceModel
    # Defaults: the API's (llmscale.api.defaults), as a default LLMDeployment would have them.
    slo_ttft_p95_seconds: float = parse_duration_seconds(defaults.SLO_TTFT_P95)
    slo_itl_p95_seconds: float | None = None  # scored only when a manifest or flag sets one
    slo_objective: float = defaults.SLO_OBJECTIVE
    cold_start_seconds: float | None = None  # None: the model's default from its weight size
    cold_start_jitter: float = 0.1  # each start lasts cold_start x U(1 - j, 1 + j)
    step_seconds: float = 1.0
    prometheus: PrometheusModel = field(default_factory=PrometheusModel)
    initial_replicas: int = 1  # Ready at t = 0 for every policy (the equal start)
    hold_timeout_seconds: float = 300.0  # gateway: longest a request is held at zero
    gateway_queue_limit: int = 10_000  # gateway: held requests beyond this fail (503)
    min_replicas: int = 0
    max_replicas: int = defaults.SIMULATE_MAX_REPLICAS
    drain_tail_seconds: float = 600.0  # keep simulating after the last arrival at most this long
    seed: int = 0

    @property
    def effective_cold_start_seconds(self) -> float:
        if self.cold_start_seconds is not None:
            return self.cold_start_seconds
        return self.model.cold_start_seconds


@dataclass
class _Fleet:
    replicas: list[SimReplica] = field(default_factory=list)
    cold_starts: int = 0
    scale_events: int = 0
    gpu_seconds: float = 0.0
    cold_start_samples: list[float] = field(default_factory=list)


def make_context(config: FleetConfig, trace: Trace, policy: SimPolicy) -> SimContext:
    """What a policy may know before the run: the deployment, never the trace's statistics
    (only policies that declare `needs_trace`, warm and oracle, get the trace itself)."""
    model = config.model
    capacity = planned_capacity_rps(model)
    summary = None
    if getattr(policy, "needs_trace", False):
        summary = TraceSummary(
            trace.arrival_seconds, trace.input_tokens, trace.output_tokens, trace.duration_seconds
        )
    return SimContext(
        model=model,
        slo_ttft_p95_seconds=config.slo_ttft_p95_seconds,
        slo_itl_p95_seconds=config.slo_itl_p95_seconds,
        slo_objective=config.slo_objective,
        cold_start_seconds=config.effective_cold_start_seconds,
        gpu_price_per_hour_usd=model.gpu_price_per_hour_usd,
        min_replicas=config.min_replicas,
        max_replicas=config.max_replicas,
        replica_capacity_rps=capacity,
        mean_input_tokens=PRIOR_PROMPT_TOKENS,
        mean_output_tokens=PRIOR_GENERATION_TOKENS,
        trace=summary,
    )


def simulate(trace: Trace, policy: SimPolicy, config: FleetConfig) -> PolicyResult:
    """Replay `trace` with `policy` deciding the replica count; deterministic for a seed."""
    return _Simulation(trace, policy, config).run()


class _Simulation:
    def __init__(self, trace: Trace, policy: SimPolicy, config: FleetConfig) -> None:
        self.trace = trace
        self.policy = policy
        self.config = config
        self.model = config.model
        self.rng = np.random.default_rng(config.seed)
        self.dt = config.step_seconds
        end = trace.duration_seconds + config.drain_tail_seconds
        self.steps = math.ceil(end / self.dt) + 1
        self.metrics = MetricsRecorder(self.steps, self.dt)
        self.fleet = _Fleet()
        count = len(trace)
        self.ttft = np.full(count, np.nan)
        self.itl = np.full(count, np.nan)
        self.failed = np.zeros(count, dtype=bool)
        self.gateway: list[int] = []  # held request indices, FIFO
        self.gateway_head = 0
        self.rejected_requests = 0
        self.rejected: npt.NDArray[np.bool_] | None = None
        # A policy that reads its pods directly (Knative's autoscaler) brings its own view.
        own_view = getattr(policy, "prometheus", None)
        self.prometheus: PrometheusModel = (
            own_view if isinstance(own_view, PrometheusModel) else config.prometheus
        )
        # Policies that never read latency quantiles (the baselines) skip their computation.
        self.wants_latency = bool(getattr(policy, "reads_latency_quantiles", True))
        self._sorted_samples: list[float] = []
        self._sorted_count = 0
        self.last_tick_arrivals = 0.0
        self.series: dict[str, list[float]] = {"time": [], "arrival_rps": [], "replicas": [], "ready": []}

    # ---- scaling --------------------------------------------------------------------------

    def _live(self) -> list[SimReplica]:
        return [r for r in self.fleet.replicas if r.state != DRAINING]

    def _apply(self, desired: int, now: float) -> None:
        config = self.config
        desired = max(config.min_replicas, min(config.max_replicas, int(desired)))
        live = self._live()
        if desired == len(live):
            return
        self.fleet.scale_events += 1
        if desired > len(live):
            for _ in range(desired - len(live)):
                jitter = 1.0 + config.cold_start_jitter * (2.0 * float(self.rng.random()) - 1.0)
                ready_at = now + config.effective_cold_start_seconds * jitter
                self.fleet.replicas.append(SimReplica(self.model, now, ready_at))
                self.fleet.cold_starts += 1
            return
        # Remove starting replicas first (newest first), then the least loaded ready ones.
        surplus = len(live) - desired
        order = sorted(live, key=lambda r: (r.state == READY, r.outstanding, -r.created_seconds))
        for replica in order[:surplus]:
            if replica.state == STARTING or replica.outstanding == 0:
                self._delete(replica, now)
            else:
                replica.state = DRAINING

    def _idle(self) -> bool:
        for replica in self.fleet.replicas:
            if replica.running or replica.waiting or replica.prefill_work_seconds > 0:
                return False
        return True

    def _delete(self, replica: SimReplica, now: float) -> None:
        self.fleet.gpu_seconds += (now - replica.created_seconds) * self.model.gpus
        self.fleet.replicas.remove(replica)

    def _observe(self, now: float, ready: int) -> FleetObservation:
        metrics = self.metrics
        prom = self.prometheus
        engine_span = prom.samples(now, prom.engine_scrape_interval_seconds)
        engine_last = engine_span[1] if engine_span else None
        # Engine series exist only while a replica was Ready at the last scrape.
        engine_ok = engine_span is not None and metrics.ready[metrics.index_at(engine_span[1])] > 0
        gateway_span = prom.samples(now, prom.gateway_scrape_interval_seconds)
        gateway_last = prom.last_sample(now, prom.gateway_scrape_interval_seconds)
        arrivals_now = metrics.arrivals[metrics.index_at(now)]
        since_tick = int(arrivals_now - self.last_tick_arrivals)
        self.last_tick_arrivals = arrivals_now
        samples = self.fleet.cold_start_samples
        if len(samples) != self._sorted_count:
            self._sorted_samples = sorted(samples)
            self._sorted_count = len(samples)
        ordered = self._sorted_samples
        p50 = ordered[len(ordered) // 2] if ordered else None
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else None
        live = len(self._live())
        # The operator's rule (autoscale_gather.metrics_usable): with Ready replicas the engine
        # series must be there, at zero the gateway's must.
        available = engine_ok if ready > 0 else gateway_span is not None
        ttft_p95 = itl_p95 = None
        if engine_ok and engine_span is not None:
            at = metrics.index_at(engine_span[1])
            if self.wants_latency:
                ttft_p95 = histogram_quantile(
                    0.95, TTFT_BUCKETS_SECONDS, bucket_increase(metrics, metrics.ttft_counts, engine_span)
                )
                itl_p95 = histogram_quantile(
                    0.95, ITL_BUCKETS_SECONDS, bucket_increase(metrics, metrics.itl_counts, engine_span)
                )
            request_rate = counter_rate(metrics, metrics.success, engine_span)
            prompt_rate = counter_rate(metrics, metrics.prompt_tokens, engine_span)
            generation_rate = counter_rate(metrics, metrics.generation_tokens, engine_span)
            waiting = float(metrics.waiting[at])
            running = float(metrics.running[at])
            kv_usage = float(metrics.kv_usage[at])
        else:
            request_rate = prompt_rate = generation_rate = waiting = running = kv_usage = 0.0
        return FleetObservation(
            now=now,
            current_replicas=live,
            ready_replicas=ready,
            request_rate_rps=request_rate,
            prompt_tokens_rate=prompt_rate,
            generation_tokens_rate=generation_rate,
            num_requests_waiting=waiting,
            num_requests_running=running,
            kv_cache_usage=kv_usage,
            ttft_p95_seconds=ttft_p95,
            itl_p95_seconds=itl_p95,
            gateway_arrivals_rps=counter_rate(metrics, metrics.arrivals, gateway_span)
            if gateway_span
            else 0.0,
            gateway_queue_depth=int(metrics.gateway_queue[metrics.index_at(gateway_last)])
            if gateway_last is not None
            else 0,
            metrics_available=available,
            cold_start_p50_seconds=p50,
            cold_start_p95_seconds=p95,
            gateway_arrivals_last_tick=since_tick,
            engine_metrics_available=engine_ok,
            gateway_metrics_available=gateway_span is not None,
            gateway_reporting=gateway_span is not None,
            engine_sample_seconds=engine_last,
            gateway_queue_now=len(self.gateway) - self.gateway_head,
        )

    # ---- the loop -------------------------------------------------------------------------

    def run(self) -> PolicyResult:
        config, trace, model = self.config, self.trace, self.model
        policy = self.policy
        policy.prepare(make_context(config, trace, policy))
        # Python lists: per-request scalar access on numpy arrays is several times slower.
        arrival = trace.arrival_seconds.tolist()
        prompt_array = np.maximum(trace.input_tokens, 1)
        # vLLM answers 400 to a prompt that leaves no room in max_model_len and caps max_tokens.
        rejected = prompt_array >= model.max_model_len
        self.failed |= rejected
        inputs = prompt_array.tolist()
        outputs = np.clip(trace.output_tokens, 1, np.maximum(model.max_model_len - prompt_array, 1)).tolist()
        admissible = np.flatnonzero(~rejected)
        order = admissible.tolist()
        self.rejected_requests = int(rejected.sum())
        self.rejected = rejected
        prompt_seconds = prompt_array.astype(np.float64)
        prefill_costs = (
            prompt_seconds * model.prefill_seconds_per_token
            + prompt_seconds * (prompt_seconds + 1) / 2.0 * model.prefill_attention_seconds_per_token_pair
        ).tolist()
        kv_need = [i + o for i, o in zip(inputs, outputs, strict=True)]
        step_index_of = np.searchsorted(
            trace.arrival_seconds[admissible], np.arange(self.steps + 1) * self.dt, side="left"
        ).tolist()
        dt = self.dt
        tick = policy.tick_seconds
        next_tick = 0.0
        ttft: list[float] = [math.nan] * len(trace)
        itl: list[float] = [math.nan] * len(trace)
        failed = self.failed
        kv_limit = model.kv_cache_tokens
        max_seqs = model.max_num_seqs
        nb_ttft, nb_itl = len(TTFT_BUCKETS_SECONDS) + 1, len(ITL_BUCKETS_SECONDS) + 1
        finished: list[float] = []
        total = len(trace)
        done_requests = self.rejected_requests
        # The equal start: the same Ready fleet for every policy (module docstring).
        for _ in range(max(0, min(config.max_replicas, config.initial_replicas))):
            replica = SimReplica(model, 0.0, 0.0)
            replica.state = READY
            self.fleet.replicas.append(replica)
        last_step = self.steps - 1
        for step in range(self.steps):
            now = step * dt
            ready_count = 0
            for replica in self.fleet.replicas:
                if replica.state == STARTING and replica.ready_seconds <= now:
                    replica.state = READY
                    replica.prefill_busy_until = now
                    self.fleet.cold_start_samples.append(replica.ready_seconds - replica.created_seconds)
                if replica.state == READY:
                    ready_count += 1
            if now >= next_tick:
                observation = self._observe(now, ready_count)
                self._apply(policy.decide(observation), now)
                next_tick += tick
                ready_count = sum(1 for r in self.fleet.replicas if r.state == READY)
                self.series["time"].append(now)
                self.series["arrival_rps"].append(observation.gateway_arrivals_rps)
                self.series["replicas"].append(float(len(self.fleet.replicas)))
                self.series["ready"].append(float(ready_count))
            lo, hi = int(step_index_of[step]), int(step_index_of[step + 1])
            if lo == hi and self.gateway_head == len(self.gateway) and self._idle():
                # Nothing arrives, nothing is held, no replica has work: only the gauges move.
                self.metrics.record(
                    step, success=0, prompt_tokens=0.0, generation_tokens=0.0, arrivals=0,
                    ttft_counts=None, itl_counts=None, running=0, waiting=0, kv_usage=0.0,
                    ready=ready_count, provisioned=len(self.fleet.replicas), gateway_queue=0,
                )  # fmt: skip
                if (done_requests >= total and now >= trace.duration_seconds) or step == last_step:
                    break
                continue
            ready = [r for r in self.fleet.replicas if r.state == READY]
            ttft_counts = [0.0] * nb_ttft
            itl_counts = [0.0] * nb_itl
            prompt_tokens = 0.0
            # Gateway: hold while nothing is ready; otherwise release the held queue first.
            if ready:
                pending = self.gateway[self.gateway_head :] + order[lo:hi]
                self.gateway, self.gateway_head = [], 0
            else:
                self.gateway.extend(order[lo:hi])
                pending = []
                limit = config.gateway_queue_limit
                held = len(self.gateway) - self.gateway_head
                while held > 0:
                    oldest = self.gateway[self.gateway_head]
                    if held > limit or now - arrival[oldest] > config.hold_timeout_seconds:
                        failed[oldest] = True
                        done_requests += 1
                        self.gateway_head += 1
                        held -= 1
                    else:
                        break
            if pending:
                outstanding = [r.running + len(r.waiting) for r in ready]
            for request in pending:
                if len(ready) > 1:
                    least = min(outstanding)
                    chosen = outstanding.index(least)
                    outstanding[chosen] = least + 1
                    target = ready[chosen]
                else:
                    target = ready[0]
                arrived = arrival[request]
                need = kv_need[request]
                # (SimReplica.can_admit, inlined: this line runs once per request)
                if not target.waiting and target.running < max_seqs and target.kv_reserved + need <= kv_limit:
                    first, step_time = target.admit(
                        request, now if now > arrived else arrived, inputs[request], outputs[request],
                        prefill_costs[request],
                    )  # fmt: skip
                    latency = first - arrived
                    ttft[request] = latency
                    itl[request] = step_time
                    ttft_counts[bisect_left(TTFT_BUCKETS_SECONDS, latency)] += 1
                    prompt_tokens += inputs[request]
                else:
                    target.waiting.append(request)
            generation = 0.0
            completed = 0
            running = waiting = 0
            kv_used = 0.0
            end_of_step = now + dt
            for replica in list(self.fleet.replicas):
                if replica.state == STARTING:
                    continue
                if not replica.running and not replica.waiting and replica.state == READY:
                    replica.prefill_work_seconds = 0.0  # an idle replica: nothing to advance
                    continue
                finished.clear()
                produced = replica.advance(now, dt, finished)
                if produced:
                    generation += produced
                    itl_counts[bisect_left(ITL_BUCKETS_SECONDS, replica.last_step_seconds)] += produced
                done_requests += len(finished)
                completed += len(finished)
                freed = finished
                slot = 0
                queue = replica.waiting
                while queue:
                    request = queue[0]
                    if not replica.can_admit(kv_need[request]):
                        break
                    queue.popleft()
                    when = freed[slot] if slot < len(freed) else now + dt
                    slot += 1
                    arrived = arrival[request]
                    first, step_time = replica.admit(
                        request, when if when > arrived else arrived, inputs[request], outputs[request],
                        prefill_costs[request],
                    )  # fmt: skip
                    latency = first - arrived
                    ttft[request] = latency
                    itl[request] = step_time
                    ttft_counts[bisect_left(TTFT_BUCKETS_SECONDS, latency)] += 1
                    prompt_tokens += inputs[request]
                if replica.state == DRAINING and replica.outstanding == 0:
                    self._delete(replica, now + dt)
                    continue
                # (SimReplica.waiting_for_prefill and context_tokens, inlined: per replica and step)
                starts = replica.prefill_starts
                while starts and starts[0] <= end_of_step:
                    starts.popleft()
                queued_prefills = len(starts)
                running += replica.running - queued_prefills
                waiting += len(queue) + queued_prefills
                context = replica.batch_context_offset + replica.decoding * replica.clock
                if context > 0:
                    kv_used += context / kv_limit if context < kv_limit else 1.0
            ready_now = 0
            for replica in self.fleet.replicas:
                if replica.state == READY:
                    ready_now += 1
            self.metrics.record(
                step,
                success=completed,
                prompt_tokens=prompt_tokens,
                generation_tokens=generation,
                arrivals=hi - lo,
                ttft_counts=ttft_counts if any(ttft_counts) else None,
                itl_counts=itl_counts if generation else None,
                running=running,
                waiting=waiting,
                kv_usage=kv_used / ready_now if ready_now else 0.0,
                ready=ready_now,
                provisioned=len(self.fleet.replicas),
                gateway_queue=len(self.gateway) - self.gateway_head,
            )
            if (done_requests >= total and now >= trace.duration_seconds) or step == last_step:
                break
        end = (step + 1) * dt
        for replica in list(self.fleet.replicas):
            self._delete(replica, end)
        self.ttft[:] = ttft
        self.itl[:] = itl
        self.series["cold_start_seconds"] = list(self.fleet.cold_start_samples)
        unserved = np.isnan(self.ttft) & ~failed
        failed |= unserved  # still held or queued when the simulation stopped
        return build_result(
            policy.name, trace, config, self.ttft, self.itl, failed, self.fleet.gpu_seconds,
            self.fleet.cold_starts, self.fleet.scale_events, self.series, rejected=self.rejected,
        )  # fmt: skip

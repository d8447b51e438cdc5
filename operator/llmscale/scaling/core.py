"""`decide`: the whole scaling decision as one pure function (no clock, no I/O).

Pipeline (each step is its own module):

1. validity   -- no metrics: hold replicas (valid=False, `MetricsUnavailable`), except that a
                 gateway activation request still wakes a deployment at zero;
2. demand     -- request and token rates -> replica-units of work (`demand`);
3. learning   -- workload statistics, capacity model (TTFT vs load), forecast model;
4. forecast   -- load at horizon = measured cold start p95 + one decision interval;
5. strategy   -- the concrete strategy (`strategy`: the Auto rule chain, with dwell);
6. replicas   -- Warm: the decaying peak; Autoscaled: the 1<->N scaler with floor 1;
                 ScaleToZero: the 0<->1 activation machine, then the scaler;
7. bounds     -- clamp to [minReplicas, maxReplicas];
8. guards     -- "no data" keeps the current replicas whatever was computed; zero replicas only
                 with positive proof of idleness (every demand signal present and zero, the
                 gateway's included), else one replica stays (`IdleNotProven`);
9. mode       -- DryRun: the decision is made and recorded but marked `dry_run` (not applied).

Waking from zero on the gateway's signal is the activation machine's job (step 6): the operator
only delivers the signal (`DecisionInputs.activation_requested`) and ticks at once. Everything
between gather and apply is here, so the operator and the simulator apply `Decision` verbatim
(`Decision.replicas_to_apply`); tests/unit/parity keeps them so.
"""

from __future__ import annotations

import dataclasses
import math

from llmscale.scaling import (
    activation,
    capacity,
    demand,
    forecast,
    keepalive,
    reasons,
    scaler,
    strategy,
    workload,
)
from llmscale.scaling.types import (
    Decision,
    DecisionInputs,
    Forecast,
    ScalerState,
    ScalingPolicy,
    Strategy,
    parse_strategy,
)


def cold_start_seconds(inputs: DecisionInputs, policy: ScalingPolicy) -> float:
    measured = inputs.cold_start_p95_seconds
    if measured is not None and math.isfinite(measured) and measured > 0:
        return measured
    return policy.cold_start_seconds


def horizon_seconds(inputs: DecisionInputs, policy: ScalingPolicy) -> float:
    return cold_start_seconds(inputs, policy) + policy.decision_interval_seconds


def _clamp(replicas: int, policy: ScalingPolicy) -> int:
    return min(max(replicas, policy.min_replicas), policy.max_replicas)


def decide(inputs: DecisionInputs, policy: ScalingPolicy, state: ScalerState, now: float) -> Decision:
    """Desired replicas and why. Never mutates `state`; the result carries `next_state`."""
    decision = guard(_decide(inputs, policy, state, now), inputs)
    decision.next_state.last_desired_replicas = decision.desired_replicas
    if policy.dry_run:
        decision = dataclasses.replace(decision, dry_run=True)
    return decision


IDLE_PROOF_SIGNALS: frozenset[str] = frozenset(
    {
        "request_rate_rps",
        "num_requests_waiting",
        "num_requests_running",
        "gateway_arrivals_rps",
        "gateway_queue_depth",
    }
)
"""The demand signals whose presence and zero value together prove idleness."""


def metrics_usable(ready_replicas: int, *, engine_reporting: bool, gateway_reporting: bool) -> bool:
    """The gather rule of both the operator and the simulator: with a Ready replica the engines
    must report; with none, the gateway's series suffice (at zero engines export nothing)."""
    return engine_reporting if ready_replicas > 0 else gateway_reporting


def idle_proven(inputs: DecisionInputs) -> bool:
    """Positive proof of idleness at this instant: every demand signal present and zero."""
    return (
        inputs.metrics_available
        and not (inputs.missing_demand_signals & IDLE_PROOF_SIGNALS)
        and inputs.gateway_arrivals_rps is not None
        and inputs.gateway_arrivals_rps <= 0
        and inputs.request_rate_rps <= 0
        and inputs.num_requests_waiting <= 0
        and inputs.num_requests_running <= 0
        and inputs.gateway_queue_depth <= 0
    )


def guard(decision: Decision, inputs: DecisionInputs) -> Decision:
    """The safety rules on top of the pipeline's answer (steps 8 of the module docstring)."""
    current = inputs.current_replicas
    if not decision.valid:
        # "No data" keeps what runs, whatever was computed (even outside the bounds).
        return dataclasses.replace(decision, desired_replicas=current)
    if decision.desired_replicas == 0 and current > 0 and not idle_proven(inputs):
        missing = sorted(inputs.missing_demand_signals & IDLE_PROOF_SIGNALS)
        if inputs.gateway_arrivals_rps is None and "gateway_arrivals_rps" not in missing:
            missing.append("gateway_arrivals_rps")
        return dataclasses.replace(
            decision,
            desired_replicas=1,
            reason=reasons.IDLE_NOT_PROVEN,
            message=f"zero was due ({decision.reason}) but idleness is not positively proven "
            f"(missing: {', '.join(missing) or 'none'}; demand not all zero): keeping one replica",
        )
    return decision


def _decide(inputs: DecisionInputs, policy: ScalingPolicy, state: ScalerState, now: float) -> Decision:
    next_state = state.clone()
    cold_start = cold_start_seconds(inputs, policy)
    horizon = cold_start + policy.decision_interval_seconds
    previous_strategy = _previous_strategy(next_state, policy)

    if (
        not inputs.metrics_available
        and inputs.current_replicas == 0
        and inputs.gateway_arrivals_rps is not None
    ):
        # At zero replicas the engines export nothing by design; the gateway's own counts are
        # then the complete demand signal (and the proof of idleness).
        inputs = dataclasses.replace(inputs, metrics_available=True)
    if not inputs.metrics_available:
        return _without_metrics(inputs, policy, next_state, now, previous_strategy)

    measured = demand.measure(
        inputs,
        policy,
        next_state.workload,
        drain_seconds=horizon,
        throughput_per_replica=capacity.throughput_scale(next_state.capacity),
    )
    workload.update(next_state.workload, policy, inputs, measured, cold_start_seconds=cold_start, now=now)
    if inputs.ready_replicas > 0:
        settled = workload.settled_seconds(next_state.workload, now)
        capacity.observe_throughput(
            next_state.capacity,
            completed_load_per_replica=demand.engine_load(inputs, policy) / inputs.ready_replicas,
            waiting_per_replica=max(0.0, inputs.num_requests_waiting) / inputs.ready_replicas,
            kv_cache_usage=inputs.kv_cache_usage,
            settled_seconds=settled,
            dt=_since_last(state, now, policy),
            now=now,
        )
        capacity.observe(
            next_state.capacity,
            policy,
            load_per_replica=measured.load_replicas / inputs.ready_replicas,
            ttft_p95_seconds=inputs.ttft_p95_seconds,
            itl_p95_seconds=inputs.itl_p95_seconds,
            settled_seconds=settled,
            backlog_free=inputs.num_requests_waiting <= 0 and inputs.gateway_queue_depth <= 0,
            now=now,
        )
    per_replica = capacity.sustainable_load(next_state.capacity, policy)
    serving = inputs.ready_replicas > 0
    scaler.update_slo_headroom(
        next_state.scaler,
        policy,
        ttft_p95_seconds=inputs.ttft_p95_seconds if serving else None,
        itl_p95_seconds=inputs.itl_p95_seconds if serving else None,
        dt=_since_last(state, now, policy),
    )
    forecast.update(next_state.forecast, policy, measured.load_replicas, now, horizon)
    point, lower, upper, model, model_reason = forecast.predict_interval(
        next_state.forecast, policy, now, horizon
    )
    interval_upper = upper
    # The interval reported in status is calibrated (adaptive conformal); the scaler provisions
    # for point + z sigma of recent upside surprises, never beyond the error window's plain 95th
    # percentile (see `forecast.scaling_upper`).
    upper = forecast.scaling_upper(next_state.forecast, policy, point, horizon)
    per_request = measured.work_per_request_replica_seconds
    predicted = Forecast(
        horizon_seconds=horizon,
        requests_per_second=point / per_request,
        requests_per_second_upper=interval_upper / per_request,
        load_replicas=point,
        load_replicas_upper=upper,
        requests_per_second_lower=lower / per_request,
        model=model,
        reason=model_reason,
    )
    keep = keepalive.plan(next_state.workload, policy, cold_start)
    idle_now = workload.idle_seconds_now(next_state.workload, now)

    choice = strategy.choose(
        strategy.StrategyContext(
            policy=policy,
            workload=next_state.workload,
            now=now,
            cold_start_seconds=cold_start,
            load_replicas=measured.load_replicas,
            sustainable_load_per_replica=per_replica,
            keep_alive=keep,
        ),
        next_state.strategy,
    )

    def finish(replicas: int, reason: str, message: str) -> Decision:
        desired = _clamp(replicas, policy)
        if desired != replicas:
            message = f"{message}; clamped to [{policy.min_replicas}, {policy.max_replicas}]"
        next_state.last_decision_time = now
        return Decision(
            desired_replicas=desired,
            strategy=choice.strategy,
            reason=reason,
            message=message,
            valid=True,
            forecast=predicted,
            next_state=next_state,
            strategy_reason=choice.reason,
            strategy_message=choice.message,
            load_replicas=measured.load_replicas,
            sustainable_load_per_replica=per_replica,
        )

    def recommend(*, floor_replicas: int) -> scaler.ScaleRecommendation:
        """The 1<->N scaler on this tick's measurements, never below `floor_replicas`; within a
        proven idle gap shorter than the keep-alive the fleet holds what it has."""
        result = scaler.recommend(
            next_state.scaler,
            policy,
            load_replicas=measured.load_replicas,
            burst_load_replicas=measured.burst_load_replicas,
            backlog_replicas=measured.backlog_replicas,
            forecast_upper_replicas=upper,
            current_replicas=inputs.current_replicas,
            ready_replicas=inputs.ready_replicas,
            sustainable_load_per_replica=per_replica,
            floor_replicas=floor_replicas,
            now=now,
            backlog_draining=inputs.gateway_queue_depth > 0
            or inputs.num_requests_waiting >= max(1, inputs.ready_replicas),
        )
        if idle_now == 0:
            next_state.workload.busy_peak_load = max(
                next_state.workload.busy_peak_load, next_state.scaler.stable_load
            )
            busy_since = next_state.workload.busy_since
            onset = None if busy_since is None else now - busy_since
            if (
                onset is not None
                and next_state.workload.last_gap_seconds >= policy.scale_down_delay_seconds
                and onset < policy.stable_window_seconds
                and result.replicas < inputs.current_replicas
            ):
                # A burst after a gap long enough that only the keep-alive kept this capacity:
                # it stays until the stable window has seen the burst (the direct gateway read
                # shows its first seconds while the averages are still those of the gap).
                return scaler.ScaleRecommendation(
                    inputs.current_replicas,
                    reasons.KEEP_ALIVE_HOLD,
                    f"a burst began {onset:.0f}s ago after an idle gap: holding "
                    f"{inputs.current_replicas} replica(s) until the {policy.stable_window_seconds:.0f}s "
                    f"stable window has seen it ({result.message})",
                    result.need_replicas,
                )
        elif idle_now < keep.keep_alive_seconds and result.replicas < inputs.current_replicas:
            # The hold only ever stops a scale-down: what the last busy period needed (its
            # stable-window peak), never more than runs.
            peak_need = math.ceil(next_state.workload.busy_peak_load / per_replica - 1e-9)
            held = min(inputs.current_replicas, max(floor_replicas, peak_need))
            if held > result.replicas:
                return scaler.ScaleRecommendation(
                    held,
                    reasons.KEEP_ALIVE_HOLD,
                    f"idle {idle_now:.0f}s of a {keep.keep_alive_seconds:.0f}s keep-alive: holding "
                    f"{held} replica(s) for the next burst ({keep.reason}: {keep.message})",
                    result.need_replicas,
                )
        return result

    floor = max(1, policy.min_replicas)
    if choice.strategy is Strategy.WARM:
        activation.step(
            next_state.activation,
            policy,
            inputs,
            zero_allowed=False,
            idle_seconds=0.0,
            expected_requests_in_cold_start=0.0,
            now=now,
        )
        peak = max(next_state.workload.peak_load, upper)
        warm = max(floor, math.ceil(peak / per_replica - 1e-9))
        # Warm never drops below what the load needs right now.
        result = recommend(floor_replicas=warm)
        return finish(
            result.replicas,
            reasons.WARM_PEAK if result.replicas == warm else result.reason,
            f"warm at the peak need: {peak:.2f} replica-units / {per_replica:.2f} per replica = {warm}; "
            + result.message,
        )

    zero_allowed = choice.strategy is Strategy.SCALE_TO_ZERO and policy.min_replicas == 0
    expected_in_cold_start = _expected_requests(next_state, policy, now, horizon, cold_start, per_request)
    gate = activation.step(
        next_state.activation,
        policy,
        inputs,
        zero_allowed=zero_allowed,
        idle_seconds=idle_now,
        expected_requests_in_cold_start=expected_in_cold_start,
        now=now,
        keep_alive_seconds=keep.keep_alive_seconds if keep.representative else None,
        prewarm_seconds=keep.prewarm_seconds,
        prewarm_until_seconds=keep.prewarm_until_seconds,
        gap_seconds=_gap_seconds(next_state, now),
    )
    if gate.at_zero:
        next_state.scaler.recommendations.clear()
        return finish(0, gate.reason, gate.message)

    result = recommend(floor_replicas=floor)
    if inputs.current_replicas == 0 and gate.reason in (
        reasons.ACTIVATION_REQUESTED,
        reasons.GATEWAY_QUEUE,
        reasons.DEMAND_AT_ZERO,
        reasons.PREDICTIVE_WARM_UP,
        reasons.PREWARM_GAP,
    ):
        return finish(result.replicas, gate.reason, f"{gate.message}; {result.message}")
    if zero_allowed and result.replicas <= floor and result.reason in _HOLDING:
        # At the last replica, what matters is how far the idle proof has come.
        return finish(result.replicas, gate.reason, f"{gate.message}; {result.message}")
    return finish(result.replicas, result.reason, result.message)


_HOLDING = (reasons.WITHIN_HYSTERESIS, reasons.SCALE_DOWN_DELAYED, reasons.SCALE_DOWN)


def _expected_requests(
    state: ScalerState,
    policy: ScalingPolicy,
    now: float,
    horizon: float,
    cold_start: float,
    per_request: float,
) -> float:
    """Requests a learned seasonal pattern expects within one cold start around now + horizon."""
    learned = forecast.seasonal_expectation(state.forecast, policy, now, horizon)
    if learned is None or per_request <= 0:
        return 0.0
    return learned / per_request * cold_start


def _gap_seconds(state: ScalerState, now: float) -> float | None:
    last = state.workload.last_busy_time
    return None if last is None else max(0.0, now - last)


def _since_last(state: ScalerState, now: float, policy: ScalingPolicy) -> float:
    if state.last_decision_time is None:
        return 0.0
    return min(max(0.0, now - state.last_decision_time), 10.0 * policy.decision_interval_seconds)


def _previous_strategy(state: ScalerState, policy: ScalingPolicy) -> Strategy:
    if policy.strategy is not Strategy.AUTO:
        return policy.strategy
    return parse_strategy(state.strategy.current) or Strategy.AUTOSCALED


def _without_metrics(
    inputs: DecisionInputs,
    policy: ScalingPolicy,
    state: ScalerState,
    now: float,
    previous_strategy: Strategy,
) -> Decision:
    # Without metrics there is no proof of idleness: forget any idle period in progress.
    state.workload.idle_since = None
    signal = activation.wake_signal(inputs)
    if inputs.current_replicas == 0 and signal is not None:
        state.activation.phase = activation.WAKING
        state.activation.since = now
        desired = _clamp(max(1, policy.min_replicas), policy)
        reason, message = signal
        valid = True
        message = f"{message} (metrics unavailable; the gateway signal suffices to wake)"
    else:
        desired = _clamp(inputs.current_replicas, policy)
        reason = reasons.METRICS_UNAVAILABLE
        message = f"no usable metrics: holding {inputs.current_replicas} replica(s)"
        valid = False
        gateway_need = _gateway_need(inputs, policy, state)
        if gateway_need > desired:
            # The gateway's own counts are data too: enough to add replicas (never to remove).
            desired = _clamp(gateway_need, policy)
            reason = reasons.SCALE_UP_LOAD
            message = (
                f"engine metrics unavailable; gateway arrivals {inputs.gateway_arrivals_rps:.2f} req/s "
                f"and {inputs.gateway_queue_depth} held need {gateway_need} replica(s)"
            )
            valid = True
    state.last_decision_time = now
    return Decision(
        desired_replicas=desired,
        strategy=previous_strategy,
        reason=reason,
        message=message,
        valid=valid,
        forecast=None,
        next_state=state,
        strategy_reason=state.strategy.reason,
        strategy_message=state.strategy.message,
    )


def _gateway_need(inputs: DecisionInputs, policy: ScalingPolicy, state: ScalerState) -> int:
    """Replicas the gateway's arrivals and held requests alone call for (0 without a gateway)."""
    if inputs.gateway_arrivals_rps is None:
        return 0
    arrivals = max(inputs.gateway_arrivals_rps, inputs.gateway_recent_arrivals_rps or 0.0)
    if not math.isfinite(arrivals) or arrivals <= 0:
        return 0
    prompt_tokens, generation_tokens = demand.mean_lengths(state.workload)
    per_request = demand.work_per_request(policy, prompt_tokens, generation_tokens)
    load = arrivals * per_request + max(0, inputs.gateway_queue_depth) * per_request / max(
        horizon_seconds(inputs, policy), demand.BACKLOG_DRAIN_SECONDS
    )
    return math.ceil(load / capacity.sustainable_load(state.capacity, policy) - 1e-9)

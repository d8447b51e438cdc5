"""0<->1 activation: its own small state machine, separate from 1<->N scaling.

Phases:

- `Active`  at least one replica. Goes to `Zero` only with positive proof of idleness (metrics
  present and zero arrivals, running, waiting and held requests) lasting `idle_window_seconds`,
  and only when no ramp is forecast within the horizon (`RampForecast` holds one replica).
- `Zero`    no replicas. Wakes immediately on the gateway's activation request, a held request
  or any arrival (`ActivationRequested`, `GatewayQueue`, `DemandAtZero`), and predictively when
  the learned time-of-day profile expects requests within one cold start of now + horizon
  (`PredictiveWarmUp`): the replica is then Ready when they arrive.
- `Waking`  one replica requested, not Ready yet: hold at least one; `Active` once Ready.

Leaving the ScaleToZero strategy (or a non-zero minReplicas) forces `Active` with one replica.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmscale.scaling import reasons
from llmscale.scaling.types import ActivationState, DecisionInputs, ScalingPolicy

ACTIVE = "Active"
ZERO = "Zero"
WAKING = "Waking"

RAMP_REQUESTS_THRESHOLD = 1.0
"""Wake (or stay) when at least this many requests are expected within one cold start."""


@dataclass(frozen=True)
class ActivationResult:
    phase: str
    at_zero: bool
    """True: desired replicas is 0 (the 1<->N scaler is not consulted)."""
    reason: str
    message: str


def wake_signal(inputs: DecisionInputs) -> tuple[str, str] | None:
    """The immediate reasons to leave zero; these need no Prometheus data."""
    if inputs.activation_requested:
        return reasons.ACTIVATION_REQUESTED, "the gateway holds a request and asked for a replica"
    if inputs.gateway_queue_depth > 0:
        return reasons.GATEWAY_QUEUE, f"the gateway holds {inputs.gateway_queue_depth} request(s)"
    arrivals = max(inputs.gateway_arrivals_rps or 0.0, inputs.gateway_recent_arrivals_rps or 0.0)
    if arrivals > 0:
        return reasons.DEMAND_AT_ZERO, f"{arrivals:.2f} req/s arriving at the gateway"
    if inputs.metrics_available and (inputs.request_rate_rps > 0 or inputs.num_requests_waiting > 0):
        return reasons.DEMAND_AT_ZERO, f"{inputs.request_rate_rps:.2f} req/s reported by the engines"
    return None


def step(
    state: ActivationState,
    policy: ScalingPolicy,
    inputs: DecisionInputs,
    *,
    zero_allowed: bool,
    idle_seconds: float,
    expected_requests_in_cold_start: float,
    now: float,
    keep_alive_seconds: float | None = None,
    prewarm_seconds: float | None = None,
    prewarm_until_seconds: float | None = None,
    gap_seconds: float | None = None,
) -> ActivationResult:
    """Advance the machine one decision (in place).

    `keep_alive_seconds`: the learned keep-alive (`keepalive.plan`), used instead of the idle
    window when longer; `prewarm_seconds`: at zero, wake once the idle gap has lasted this long,
    and keep that replica until the gap reaches `prewarm_until_seconds`; `gap_seconds`: time since
    demand was last seen (a pre-warmed replica's first scrape interrupts the idle proof, not the
    gap)."""
    gap = idle_seconds if gap_seconds is None else max(idle_seconds, gap_seconds)
    if not zero_allowed:
        return _enter(state, ACTIVE, now, False, "", "")

    if state.phase == ZERO and inputs.current_replicas > 0 and inputs.ready_replicas > 0:
        # Someone else (kubectl scale, a previous operator) brought replicas up.
        state.phase = ACTIVE
    if state.phase == ACTIVE and inputs.current_replicas == 0 and state.since is None:
        # First decision for a deployment already at zero (e.g. after an operator restart).
        state.phase = ZERO

    if state.phase == ZERO:
        signal = wake_signal(inputs)
        if signal is not None:
            return _enter(state, WAKING, now, False, *signal)
        if (
            prewarm_seconds is not None
            and idle_seconds >= prewarm_seconds
            and (prewarm_until_seconds is None or idle_seconds < prewarm_until_seconds)
        ):
            return _enter(
                state,
                WAKING,
                now,
                False,
                reasons.PREWARM_GAP,
                f"idle {gap:.0f}s: the shortest learned gaps end one cold start from now; "
                "pre-warming a replica",
            )
        if expected_requests_in_cold_start >= RAMP_REQUESTS_THRESHOLD:
            return _enter(
                state,
                WAKING,
                now,
                False,
                reasons.PREDICTIVE_WARM_UP,
                f"the time-of-day profile expects {expected_requests_in_cold_start:.1f} request(s) "
                "within one cold start: waking ahead of them",
            )
        return _enter(state, ZERO, now, True, reasons.SCALED_TO_ZERO, "idle: no replicas")

    if state.phase == WAKING:
        if inputs.ready_replicas >= 1:
            state.phase = ACTIVE
        else:
            return _enter(
                state, WAKING, now, False, reasons.WAKING, "waiting for the first replica to be Ready"
            )

    # Active.
    needed = max(policy.idle_window_seconds, keep_alive_seconds or 0.0)
    in_prewarm = (
        prewarm_seconds is not None
        and gap >= prewarm_seconds
        and (prewarm_until_seconds is None or gap < prewarm_until_seconds)
    )
    if in_prewarm:
        return _enter(
            state, ACTIVE, now, False, reasons.PREWARM_GAP,
            f"idle {gap:.0f}s: pre-warmed replica waits for the burst the gap histogram expects",
        )  # fmt: skip
    if idle_seconds >= needed and wake_signal(inputs) is None:
        if expected_requests_in_cold_start >= RAMP_REQUESTS_THRESHOLD:
            return _enter(
                state,
                ACTIVE,
                now,
                False,
                reasons.RAMP_FORECAST,
                f"idle {idle_seconds:.0f}s but {expected_requests_in_cold_start:.1f} request(s) expected "
                "within one cold start: keeping a replica",
            )
        return _enter(
            state,
            ZERO,
            now,
            True,
            reasons.IDLE_PROVEN,
            f"positive proof of idleness for {idle_seconds:.0f}s (>= {needed:.0f}s keep-alive): "
            "scaling to zero",
        )
    message = f"idle for {idle_seconds:.0f}s of {needed:.0f}s needed" if idle_seconds > 0 else "not idle"
    return _enter(state, ACTIVE, now, False, reasons.IDLE_NOT_PROVEN, message)


def _enter(
    state: ActivationState, phase: str, now: float, at_zero: bool, reason: str, message: str
) -> ActivationResult:
    if state.phase != phase or state.since is None:
        state.since = now
    state.phase = phase
    state.reason = reason
    return ActivationResult(phase=phase, at_zero=at_zero, reason=reason, message=message)

"""1<->N scaling: stable and panic windows, rate limits, hysteresis, a scale-down delay.

Load enters as replica-units (see `demand`). The need is

    need = max(stable average, forecast upper bound at the horizon) / sustainable load per replica
    up need = max(need, panic-window average / sustainable load per replica)

- Scale up at once to ceil(up need), at most `max_scale_up_rate` x current + 4 per decision.
- Panic (KPA-style): when the panic-window need reaches `panic_threshold` x the ready replicas,
  no scale-down happens for one stable window.
- Scale down only when ceil(need x (1 + hysteresis) + SLO headroom) is below current (a band
  that stops 1-replica oscillation; the headroom is learned from SLO misses, see
  `update_slo_headroom`), only to the maximum recommendation of the last
  `scale_down_delay_seconds` (every recent recommendation must allow it), and by at most
  current / `max_scale_down_rate` per decision.
- Never scale down while a backlog drains (at least one request waits per Ready replica in the
  engines, or the gateway holds requests): `BacklogDraining`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmscale.scaling import reasons
from llmscale.scaling.types import ScalerWindowState, ScalingPolicy

EPSILON = 1e-9


@dataclass(frozen=True)
class ScaleRecommendation:
    replicas: int
    reason: str
    message: str
    need_replicas: float


def _average(previous: float, sample: float, dt: float, tau: float) -> float:
    if dt <= 0:
        return previous
    weight = 1.0 - math.exp(-dt / tau)
    return previous + weight * (sample - previous)


def _push(window: list[list[float]], now: float, replicas: int, horizon: float) -> int:
    """Monotonic deque of [time, replicas]: returns the maximum over the last `horizon` seconds."""
    while window and window[-1][1] <= replicas:
        window.pop()
    window.append([now, float(replicas)])
    while window and window[0][0] < now - horizon:
        window.pop(0)
    return int(window[0][1])


def recommend(
    state: ScalerWindowState,
    policy: ScalingPolicy,
    *,
    load_replicas: float,
    burst_load_replicas: float,
    backlog_replicas: float,
    forecast_upper_replicas: float,
    current_replicas: int,
    ready_replicas: int,
    sustainable_load_per_replica: float,
    floor_replicas: int,
    now: float,
    backlog_draining: bool = False,
) -> ScaleRecommendation:
    """Replicas for the 1<->N regime (never below `floor_replicas`, which is >= 1); in place."""
    if state.last_time is None:
        state.stable_load = load_replicas
        state.panic_load = burst_load_replicas
        dt = 0.0
    else:
        dt = max(0.0, now - state.last_time)
        state.stable_load = _average(state.stable_load, load_replicas, dt, policy.stable_window_seconds)
        state.panic_load = _average(state.panic_load, burst_load_replicas, dt, policy.panic_window_seconds)
    state.last_time = now

    per_replica = sustainable_load_per_replica
    # The backlog is a deficit to drain on top of whatever the arrivals need.
    backlog_need = max(0.0, backlog_replicas) / per_replica
    stable_need = state.stable_load / per_replica + backlog_need
    forecast_need = forecast_upper_replicas / per_replica + backlog_need
    panic_need = state.panic_load / per_replica + backlog_need
    if panic_need >= policy.panic_threshold * max(ready_replicas, 1) and panic_need > stable_need:
        state.panic_until = now + policy.stable_window_seconds
    in_panic = state.panic_until is not None and now < state.panic_until
    if not in_panic:
        state.panic_until = None

    # Up: the fastest signal that shows more load wins (the panic window reacts within seconds
    # to a burst; the forecast covers what arrives during a cold start). Down: the stable window
    # and the forecast only, so a lull of a few seconds never removes a replica.
    need = max(stable_need, forecast_need)
    reason, driver = reasons.SCALE_UP_LOAD, "stable load"
    if forecast_need > stable_need:
        reason, driver = reasons.SCALE_UP_FORECAST, "forecast upper bound"
    up_need = need
    if panic_need > need:
        up_need = panic_need
        reason = reasons.SCALE_UP_PANIC if in_panic else reasons.SCALE_UP_LOAD
        driver = "panic-window load"

    wanted = max(floor_replicas, math.ceil(up_need - EPSILON))
    keep = max(
        floor_replicas,
        math.ceil(need * (1.0 + policy.hysteresis) + state.slo_headroom - EPSILON),
    )
    # The window remembers what each decision justified keeping (headroom included), so the
    # delay holds the fleet a recent decision stood by, not a bare minimum.
    window_max = _push(state.recommendations, now, max(wanted, keep), policy.scale_down_delay_seconds)
    current = max(current_replicas, 0)
    detail = (
        f"{driver} needs {up_need:.2f} replicas at {per_replica:.2f} replica-units each "
        f"(stable {state.stable_load:.2f}, forecast {forecast_upper_replicas:.2f}, "
        f"panic {state.panic_load:.2f}, backlog {backlog_replicas:.2f})"
    )

    if (
        wanted > current >= floor_replicas
        and driver != "panic-window load"
        and backlog_need == 0
        and up_need <= current * (1.0 + policy.hysteresis)
    ):
        # Within the tolerance above the fleet (HPA's default 10 %, both ways): a need a few
        # per cent over the replicas, from the stable window or the forecast's upper end, is
        # the noise of those estimates; a burst (panic window) or a backlog still scales at once.
        return ScaleRecommendation(
            current,
            reasons.WITHIN_HYSTERESIS,
            f"{detail}; within the {policy.hysteresis:.0%} tolerance",
            up_need,
        )
    if wanted > current:
        limit = max(math.ceil(current * policy.max_scale_up_rate) + 4, floor_replicas)
        if wanted > limit:
            state.last_scale_time = now
            return ScaleRecommendation(
                limit, reasons.SCALE_UP_RATE_LIMITED, f"{detail}; limited to {limit} this step", up_need
            )
        state.last_scale_time = now
        return ScaleRecommendation(wanted, reason, detail, up_need)

    if backlog_draining and keep < current:
        # Requests wait: whatever the arrival rate says, the fleet is busy serving them.
        return ScaleRecommendation(
            max(current, floor_replicas),
            reasons.BACKLOG_DRAINING,
            f"{detail}; a backlog of {backlog_replicas:.2f} replica-units drains: no scale-down",
            need,
        )
    if keep >= current or in_panic:
        why = "panic: no scale-down" if in_panic and keep < current else "within hysteresis"
        return ScaleRecommendation(
            max(current, floor_replicas), reasons.WITHIN_HYSTERESIS, f"{detail}; {why}", need
        )
    target = max(keep, window_max)
    if target >= current:
        return ScaleRecommendation(
            current,
            reasons.SCALE_DOWN_DELAYED,
            f"{detail}; a recommendation of {window_max} in the last "
            f"{policy.scale_down_delay_seconds:.0f}s holds the scale-down",
            need,
        )
    lowest = math.ceil(current / policy.max_scale_down_rate - EPSILON)
    target = max(target, lowest, floor_replicas)
    state.last_scale_time = now
    return ScaleRecommendation(target, reasons.SCALE_DOWN, f"{detail}; scaling down to {target}", need)


def update_slo_headroom(
    state: ScalerWindowState,
    policy: ScalingPolicy,
    *,
    ttft_p95_seconds: float | None,
    itl_p95_seconds: float | None,
    dt: float,
) -> bool:
    """Learn how many replicas to keep beyond the need from the SLO itself; returns "missed".

    An error-budget signal (Google SRE workbook, "Alerting on SLOs": act on the budget's burn
    rate). A measured p95 over its target means more than 5 % of the window's requests missed
    it: with a 99 % objective the budget burns more than 5x faster than it may. Each second
    of such decisions adds 1 / `slo_headroom_rise_seconds` replicas (at most `slo_headroom_max`;
    `dt` is the time since the previous decision, one decision interval at the first); while the SLO
    holds the headroom decays with `slo_headroom_decay_seconds`. The headroom only raises the
    bound a scale-down must go below: it keeps capacity through the next burst of a workload
    whose bursts outrun a cold start, and costs nothing on one that never misses. Unmeasured
    p95s (no requests in the window) leave it unchanged but for the decay.
    """
    missed = (ttft_p95_seconds is not None and ttft_p95_seconds > policy.slo_ttft_p95_seconds) or (
        itl_p95_seconds is not None
        and policy.slo_itl_p95_seconds is not None
        and itl_p95_seconds > policy.slo_itl_p95_seconds
    )
    if missed:
        rise = (dt if dt > 0 else policy.decision_interval_seconds) / policy.slo_headroom_rise_seconds
        state.slo_headroom = min(policy.slo_headroom_max, state.slo_headroom + rise)
    elif dt > 0:
        state.slo_headroom *= math.exp(-dt / policy.slo_headroom_decay_seconds)
    return missed

"""Per-replica capacity: a prior from the performance model, refined from observed TTFT.

The capacity model answers one question: how many replica-units of load may one replica carry
while TTFT p95 stays within the SLO? The prior is `policy.target_utilization` (e.g. 0.75 of
saturation). Each observation is a pair (load per ready replica, TTFT p95):

- TTFT p95 above the SLO at a load we believed sustainable -> the belief was too optimistic:
  shrink it by 2 % per observation;
- TTFT p95 below half the SLO at >= 90 % of the believed capacity -> there is room: grow 1 %.

A violation teaches something only when nothing waits (engine queues, gateway hold): a backlog
means the fleet was short (a cold start, a burst), which more replicas already fix, not that a
replica serves less than believed. Good news teaches only a settled fleet (every replica Ready
for `SETTLE_SECONDS`, a TTFT window). Without violations the estimate relaxes back towards the
prior (1 % of the gap per observation), so a violation episode is forgotten in a few minutes
rather than ratcheting capacity down for good.

The answer stays within [0.5, 1.3] x the prior and never above 0.98 (saturation), so one bad
window (a cold-start backlog, a long-prompt burst) cannot collapse or inflate it.
"""

from __future__ import annotations

from llmscale.scaling.types import CapacityState, ScalingPolicy

SHRINK_FACTOR = 0.98
RELAX_SHARE = 0.01
GROW_EVIDENCE_SHARE = 0.9
"""Growth needs good latency near the believed capacity, not far below it."""
SETTLE_SECONDS = 60.0
GROW_FACTOR = 1.01
LOWER_BOUND_OF_PRIOR = 0.5
UPPER_BOUND_OF_PRIOR = 1.3
SATURATION_CEILING = 0.98
MIN_LOAD_TO_LEARN = 0.05
"""Below this load per replica TTFT says nothing about capacity (it is all fixed overhead)."""


def sustainable_load(state: CapacityState, policy: ScalingPolicy) -> float:
    """Replica-units one replica may carry within the SLO."""
    if state.sustainable_load_per_replica is None:
        return policy.target_utilization
    return state.sustainable_load_per_replica


def bounds(policy: ScalingPolicy) -> tuple[float, float]:
    prior = policy.target_utilization
    return prior * LOWER_BOUND_OF_PRIOR, min(SATURATION_CEILING, prior * UPPER_BOUND_OF_PRIOR)


def observe(
    state: CapacityState,
    policy: ScalingPolicy,
    *,
    load_per_replica: float,
    ttft_p95_seconds: float | None,
    settled_seconds: float,
    backlog_free: bool = True,
    now: float,
) -> None:
    """Fold one (load per ready replica, TTFT p95) pair into the capacity estimate (in place).

    `settled_seconds`: how long every provisioned replica has been Ready; `backlog_free`: nothing
    waits in the engines or the gateway."""
    if ttft_p95_seconds is None or load_per_replica < MIN_LOAD_TO_LEARN:
        return
    current = sustainable_load(state, policy)
    low, high = bounds(policy)
    slo = policy.slo_ttft_p95_seconds
    updated = current
    if ttft_p95_seconds > slo:
        # A violation at a load we called sustainable, with no backlog to blame (a backlog means
        # the fleet was short, which more replicas already fix): the per-replica belief is wrong.
        if backlog_free and load_per_replica <= current:
            updated = current * SHRINK_FACTOR
            state.last_violation_time = now
    elif settled_seconds < SETTLE_SECONDS:
        return
    elif ttft_p95_seconds < 0.5 * slo and load_per_replica >= GROW_EVIDENCE_SHARE * current:
        updated = current * GROW_FACTOR
    else:
        updated = current + RELAX_SHARE * (policy.target_utilization - current)
    state.sustainable_load_per_replica = min(max(updated, low), high)
    state.observations += 1

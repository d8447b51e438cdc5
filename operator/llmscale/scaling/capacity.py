"""Per-replica capacity: a prior from the performance model, refined from observed TTFT.

The capacity model answers one question: how many replica-units of load may one replica carry
while TTFT p95 stays within the SLO? The prior is `policy.target_utilization` (e.g. 0.75 of
saturation). Each observation is a pair (load per ready replica, TTFT p95):

- TTFT p95 above the SLO at a load we believed sustainable (and at least half of it: a violation
  on a lightly loaded replica is latency more replicas cannot fix, e.g. long prompts' own
  prefill) -> the belief was too optimistic: shrink it by 2 % per observation;
- TTFT p95 below half the SLO at >= 90 % of the believed capacity -> there is room: grow 1 %.

A violation teaches something only when nothing waits (engine queues, gateway hold): a backlog
means the fleet was short (a cold start, a burst), which more replicas already fix, not that a
replica serves less than believed. Good news teaches only a settled fleet (every replica Ready
for `SETTLE_SECONDS`, a TTFT window). Without violations the estimate relaxes back towards the
prior (1 % of the gap per observation), so a violation episode is forgotten in a few minutes
rather than ratcheting capacity down for good.

The answer stays within [0.5, 1.3] x the prior and never above 0.98 (saturation), so one bad
window (a cold-start backlog, a long-prompt burst) cannot collapse or inflate it.

Throughput. The prior's token capacities (prefill and decode tokens per second of one saturated
replica) come from the planner's performance model at reference lengths; long prompts (quadratic
attention, KV-cache pressure) or a slower engine make a real replica do less. When the engines
have shown replicas saturated (requests waiting on every Ready replica of a settled fleet, or
the KV cache nearly full with requests waiting) for a whole rate window
(`SATURATION_WINDOW_SECONDS`), the work they complete per replica, in the prior's replica-units,
*is* a saturated replica's throughput: `throughput_scale` follows it (time
constant `THROUGHPUT_SECONDS`, within [`MIN_THROUGHPUT_SCALE`, `MAX_THROUGHPUT_SCALE`]) and both
token capacities scale with it. Example: the prior says 40,000 prompt tok/s; four saturated
replicas complete 96,000 prompt tok/s and nothing else: 24,000 per replica = 0.6 replica-units,
so the scale moves towards 0.6 and one replica now counts as 24,000 prompt tok/s.

ITL counts like TTFT: an ITL p95 above `slo_itl_p95_seconds` at a believed-sustainable load is a
violation too (decode-heavy traffic breaks the ITL objective first).
"""

from __future__ import annotations

import math

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
LOADED_SHARE = 0.5
"""Violations teach only at >= half the believed capacity per replica (see `observe`)."""
THROUGHPUT_SECONDS = 300.0
MIN_THROUGHPUT_SCALE = 0.25
MAX_THROUGHPUT_SCALE = 3.0
SATURATED_WAITING_PER_REPLICA = 1.0
"""Requests waiting per Ready replica that show the replicas are saturated."""
SATURATED_KV_USAGE = 0.9
LATENCY_BOUND_SHARE = 0.5
"""A "saturated" replica completing under half the believed throughput is latency-bound."""
SATURATION_WINDOW_SECONDS = 30.0
"""How long the queues must have shown saturation before the completed work counts as
throughput: the operator's (and the simulator's) default PromQL rate window, over which the
engines' token rates are measured. Completed work is the replicas' throughput only when they
were saturated for the whole window; a queue at one scrape is not that: under Poisson arrivals
a replica at half its capacity has a request waiting about a quarter of the time (M/M/1: the
probability of two or more in the system is utilisation squared), and learning from those
samples pulled the belief down to the load (Azure conversation x1: a 1.0 prior learned 0.89
from single waiting requests at 0.53 load, and the fleet ran a second replica for 12 minutes)."""


def utilization(state: CapacityState, policy: ScalingPolicy) -> float:
    """Share of a saturated replica's throughput that keeps latency within the SLO."""
    if state.sustainable_load_per_replica is None:
        return policy.target_utilization
    return state.sustainable_load_per_replica


def throughput_scale(state: CapacityState) -> float:
    return 1.0 if state.throughput_scale is None else state.throughput_scale


def sustainable_load(state: CapacityState, policy: ScalingPolicy) -> float:
    """Replica-units (of the prior's capacity) one replica may carry within the SLO."""
    return utilization(state, policy) * throughput_scale(state)


def tokens_per_second(state: CapacityState, policy: ScalingPolicy) -> tuple[float, float]:
    """(prefill, decode) tokens per second one replica sustains at the SLO, as learned."""
    share = sustainable_load(state, policy)
    return (
        share * policy.capacity_prompt_tokens_per_second,
        share * policy.capacity_generation_tokens_per_second,
    )


def observe_throughput(
    state: CapacityState,
    *,
    completed_load_per_replica: float,
    waiting_per_replica: float,
    kv_cache_usage: float | None,
    settled_seconds: float,
    dt: float,
    now: float,
) -> None:
    """Learn a saturated replica's throughput from completed work once queues have shown
    saturation for a whole rate window (`SATURATION_WINDOW_SECONDS`)."""
    kv_full = kv_cache_usage is not None and kv_cache_usage >= SATURATED_KV_USAGE
    saturated = waiting_per_replica >= SATURATED_WAITING_PER_REPLICA or (kv_full and waiting_per_replica > 0)
    if not saturated:
        state.saturated_since = None
    elif state.saturated_since is None:
        state.saturated_since = now
    if settled_seconds < SETTLE_SECONDS or dt <= 0 or completed_load_per_replica <= 0:
        return
    current = throughput_scale(state)
    if not saturated and completed_load_per_replica <= current:
        return  # an unsaturated replica says only that it can do at least this much
    since = now if state.saturated_since is None else state.saturated_since
    if saturated and now - since < SATURATION_WINDOW_SECONDS and completed_load_per_replica <= current:
        return  # not saturated long enough for the window's work to be its throughput
    if completed_load_per_replica < LATENCY_BOUND_SHARE * current:
        # Queued yet doing a fraction of the believed work: requests wait on their own long
        # prefills (latency), not for throughput. Learning from it would collapse capacity.
        return
    # Saturated: what it completes is its throughput. Unsaturated above the belief: the belief
    # is too low.
    sample = min(max(completed_load_per_replica, MIN_THROUGHPUT_SCALE), MAX_THROUGHPUT_SCALE)
    share = 1.0 - math.exp(-dt / THROUGHPUT_SECONDS)
    state.throughput_scale = current + share * (sample - current)


def bounds(policy: ScalingPolicy) -> tuple[float, float]:
    prior = policy.target_utilization
    return prior * LOWER_BOUND_OF_PRIOR, min(SATURATION_CEILING, prior * UPPER_BOUND_OF_PRIOR)


def observe(
    state: CapacityState,
    policy: ScalingPolicy,
    *,
    load_per_replica: float,
    ttft_p95_seconds: float | None,
    itl_p95_seconds: float | None = None,
    settled_seconds: float,
    backlog_free: bool = True,
    now: float,
) -> None:
    """Fold one (load per ready replica, TTFT p95) pair into the capacity estimate (in place).

    `settled_seconds`: how long every provisioned replica has been Ready; `backlog_free`: nothing
    waits in the engines or the gateway."""
    if ttft_p95_seconds is None:
        return
    # Loads in the utilisation's own units (share of a saturated replica as learned).
    load_per_replica = load_per_replica / throughput_scale(state)
    if load_per_replica < MIN_LOAD_TO_LEARN:
        return
    current = utilization(state, policy)
    low, high = bounds(policy)
    slo = policy.slo_ttft_p95_seconds
    itl_violated = (
        itl_p95_seconds is not None
        and policy.slo_itl_p95_seconds is not None
        and itl_p95_seconds > policy.slo_itl_p95_seconds
    )
    updated = current
    if ttft_p95_seconds > slo or itl_violated:
        # A violation at a load we called sustainable, with no backlog to blame (a backlog means
        # the fleet was short, which more replicas already fix): the per-replica belief is wrong.
        # ... and only where the replicas were loaded: a violation at under half the believed
        # capacity is latency more replicas cannot fix (long prompts' own prefill time).
        if backlog_free and LOADED_SHARE * current <= load_per_replica <= current:
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

"""Keep-alive and pre-warm windows learned from the deployment's own idle gaps.

The anchor is the hybrid histogram policy of Shahrad et al., "Serverless in the Wild" (USENIX
ATC 2020): per application, keep an idle-time histogram; keep the instance alive up to a tail
percentile of it and pre-warm at a head percentile; when the histogram is not representative
(too few gaps, too many beyond its range, or no clear shape), fall back to a fixed window.

The GPU-replica analogue changes what picks the tail percentile. A serverless platform keeps 99 %
of idle times covered because a cold start costs milliseconds of CPU; a GPU replica idles at a
price, and the SLO has an error budget. So the keep-alive here is the shortest window whose
expected cold-start misses fit the share of the error budget reserved for them:

    gaps per hour x P(gap > keep-alive) x requests in a burst's first cold start
        <= COLD_START_BUDGET_SHARE x (1 - objective) x requests per hour

i.e. the gap quantile at 1 - (affordable misses per hour / (gaps per hour x requests per burst)).
A deployment whose bursts are large next to its error budget keeps capacity through every gap it
has seen (the tail); one with a roomy budget releases it as soon as idleness is proven.

Pre-warm (tried first): when even the shortest gaps (`PREWARM_QUANTILE`, lower bin edge) end
well after one cold start, the replica is released after the idle window and started again one
cold start before that head (x 0.9), then waits for the burst until the tail (`TAIL_QUANTILE`,
x 1.1). Only gaps shorter than the pre-warm point plus a cold start, or longer than the wait,
then meet a cold start; the plan is taken when their share fits the budget as above.

Of the plans that fit, the one that saves more GPU time wins (`saving_share`).

Worked examples (tests/unit/scaling/test_scaling_rules.py; four hours, 3,600 requests per hour,
objective 0.99, cold start 45 s, so the budget affords 0.5 x 0.01 x 3600 = 18 misses per hour):

- twelve gaps of 420-600 s (3 per hour), 40 requests per burst: 3 x 40 = 120 misses per hour
  would not fit, at most 18 / 120 = 15 % of gaps may miss. Pre-warm at 0.9 x 420 - 45 - 5 =
  328 s is Ready at 373 s, before any gap ends, and waits until 1.1 x 600 = 660 s, after all
  of them: 0 % miss, saving 328 - 60 = 268 s per gap = 22 % of a replica -> ScaleToZero.
- the same with 2 requests per burst: every gap may miss; releasing after the 60 s idle window
  without pre-warm saves 502 - 60 - 45 = 397 s per typical gap = 33 %, more than pre-warming.
- gaps spread from 45 s to 3,600 s with 40 requests per burst: no pre-warm (the head leaves no
  room for a cold start); the 85th percentile is the 3,600 s bin: keep-alive 3,960 s.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from llmscale.scaling import reasons
from llmscale.scaling.types import ScalingPolicy, WorkloadState

GAP_EDGES_SECONDS: tuple[float, ...] = (
    10.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 420.0, 600.0, 900.0,
    1200.0, 1800.0, 2700.0, 3600.0, 5400.0, 7200.0, 10800.0, 14400.0,
)  # fmt: skip
"""Upper edges of the idle-gap histogram bins (bin i holds gaps in (edge[i-1], edge[i]]); gaps
beyond the last edge (4 h, the paper's range) count as out of bounds."""
MIN_GAPS = 3.0
"""Fewer completed gaps than this (decayed count) is no histogram: fall back."""
MAX_OUT_OF_BOUNDS_SHARE = 0.5
"""More than half the gaps beyond the histogram's range: not representative."""
COLD_START_BUDGET_SHARE = 0.5
"""Cold starts may spend half the SLO error budget; the rest is for load noise."""
PREWARM_QUANTILE = 0.05
"""The head of the gap distribution (the paper's 5th percentile)."""
TAIL_QUANTILE = 0.99
"""The tail (the paper's 99th percentile): how long a pre-warmed replica waits for the burst."""
MARGIN = 0.1
"""The paper's 10 % margins: keep-alive x 1.1, pre-warm x 0.9."""
FALLBACK_KEEP_ALIVE_SECONDS = 600.0
"""Without a representative histogram a fleet that has served a burst keeps its capacity this
long into silence (twice the HPA/KEDA 300 s cooldown): the cost of guessing wrong is one short
hold, the cost of the fixed-delay alternative a whole burst's cold start."""


@dataclass(frozen=True)
class KeepAlive:
    keep_alive_seconds: float
    """Hold capacity this long into a proven idle gap."""
    prewarm_seconds: float | None
    """At zero, start a replica when the gap has lasted this long (None: no pre-warm)."""
    prewarm_until_seconds: float | None = None
    """A pre-warmed replica waits for the burst until the gap has lasted this long (the tail)."""
    representative: bool = False
    reason: str = ""
    message: str = ""


def record_gap(state: WorkloadState, gap_seconds: float) -> None:
    """Count one completed idle gap (in place)."""
    if len(state.gap_histogram) != len(GAP_EDGES_SECONDS):
        state.gap_histogram = [0.0] * len(GAP_EDGES_SECONDS)
    if gap_seconds > GAP_EDGES_SECONDS[-1]:
        state.gaps_out_of_bounds += 1.0
        return
    index = bisect.bisect_left(GAP_EDGES_SECONDS, gap_seconds)
    state.gap_histogram[index] += 1.0


def decay(state: WorkloadState, factor: float) -> None:
    for index, count in enumerate(state.gap_histogram):
        state.gap_histogram[index] = count * factor
    state.gaps_out_of_bounds *= factor


def gap_count(state: WorkloadState) -> float:
    return sum(state.gap_histogram) + state.gaps_out_of_bounds


def gap_quantile(state: WorkloadState, quantile: float, *, lower_edge: bool = False) -> float:
    """Upper (or lower) edge of the bin holding the `quantile` of gaps (inf when out of bounds).

    The upper edge is the safe side for a keep-alive, the lower edge for a pre-warm."""
    total = gap_count(state)
    if total <= 0:
        return math.inf
    target = quantile * total
    running = 0.0
    lower = 0.0
    for edge, count in zip(GAP_EDGES_SECONDS, state.gap_histogram, strict=False):
        running += count
        if count > 0 and running >= target - 1e-12:
            return lower if lower_edge else edge
        lower = edge
    return math.inf


def gap_share_longer(state: WorkloadState, seconds: float) -> float:
    """Share of gaps longer than `seconds` (bins straddling it count in proportion, in log time)."""
    total = gap_count(state)
    if total <= 0:
        return 0.0
    longer = state.gaps_out_of_bounds
    lower = 0.0
    for edge, count in zip(GAP_EDGES_SECONDS, state.gap_histogram, strict=False):
        if lower >= seconds:
            longer += count
        elif edge > seconds:
            low = max(lower, 1.0)
            longer += count * math.log(edge / max(seconds, low)) / math.log(edge / low)
        lower = edge
    return min(1.0, longer / total)


def representative(state: WorkloadState) -> tuple[bool, str]:
    total = gap_count(state)
    if total < MIN_GAPS:
        return False, f"{total:.1f} idle gaps seen, {MIN_GAPS:.0f} needed"
    if state.gaps_out_of_bounds > MAX_OUT_OF_BOUNDS_SHARE * total:
        return (
            False,
            f"{state.gaps_out_of_bounds:.1f} of {total:.1f} idle gaps exceed {GAP_EDGES_SECONDS[-1]:.0f}s",
        )
    return True, f"{total:.1f} idle gaps"


def requests_per_burst(state: WorkloadState) -> float:
    """Requests arriving in the first cold start of a busy period that follows a gap."""
    return state.burst_requests / state.burst_count if state.burst_count > 1e-6 else 0.0


def affordable_misses_per_hour(state: WorkloadState, policy: ScalingPolicy) -> float:
    hours = max(state.observed_seconds, 1.0) / 3600.0
    return COLD_START_BUDGET_SHARE * (1.0 - policy.slo_objective) * state.total_requests / hours


def plan(state: WorkloadState, policy: ScalingPolicy, cold_start_seconds: float) -> KeepAlive:
    """The keep-alive and pre-warm windows for this deployment now."""
    floor = policy.idle_window_seconds
    ok, why = representative(state)
    if not ok:
        return KeepAlive(
            max(floor, FALLBACK_KEEP_ALIVE_SECONDS),
            None,
            representative=False,
            reason=reasons.KEEP_ALIVE_FALLBACK,
            message=f"idle-gap histogram not representative ({why}): keeping capacity "
            f"{max(floor, FALLBACK_KEEP_ALIVE_SECONDS):.0f}s into a gap",
        )
    hours = max(state.observed_seconds, 1.0) / 3600.0
    gaps_per_hour = gap_count(state) / hours
    burst = requests_per_burst(state)
    affordable = affordable_misses_per_hour(state, policy)
    if burst <= 0 or gaps_per_hour <= 0:
        allowed_share = 1.0
    else:
        allowed_share = min(1.0, affordable / (gaps_per_hour * burst))
    prewarm_plan: KeepAlive | None = None
    # Pre-warm (the paper's hybrid policy): release at once, start again one cold start before
    # the head of the histogram, wait for the burst until its tail. Chosen when the gaps that end
    # before that replica is Ready or after the wait fit the budget.
    head = gap_quantile(state, PREWARM_QUANTILE, lower_edge=True)
    last = gap_quantile(state, TAIL_QUANTILE)
    if math.isfinite(head) and math.isfinite(last):
        start = head * (1.0 - MARGIN) - cold_start_seconds - policy.decision_interval_seconds
        until = last * (1.0 + MARGIN)
        missed = 1.0 - gap_share_longer(state, start + cold_start_seconds) + gap_share_longer(state, until)
        if start > floor and missed <= allowed_share:
            prewarm_plan = KeepAlive(
                floor,
                start,
                until,
                representative=True,
                reason=reasons.KEEP_ALIVE_LEARNED,
                message=f"{why}, {gaps_per_hour:.1f}/h, {head:.0f}-{last:.0f}s; {burst:.1f} requests meet a "
                f"burst's first cold start, budget affords {affordable:.1f}/h: release after {floor:.0f}s, "
                f"pre-warm after {start:.0f}s idle, wait until {until:.0f}s ({missed:.1%} of gaps miss)",
            )
    tail = gap_quantile(state, 1.0 - allowed_share) if allowed_share < 1.0 else 0.0
    keep_alive = max(floor, tail * (1.0 + MARGIN)) if math.isfinite(tail) else math.inf
    message = (
        f"{why}, {gaps_per_hour:.1f}/h; {burst:.1f} requests meet a burst's first cold start, "
        f"budget affords {affordable:.1f}/h: keep-alive covers {1.0 - allowed_share:.1%} of gaps = "
        + (f"{keep_alive:.0f}s" if math.isfinite(keep_alive) else "all (beyond the histogram)")
    )
    plain = KeepAlive(
        keep_alive, None, None, representative=True, reason=reasons.KEEP_ALIVE_LEARNED, message=message
    )
    if prewarm_plan is not None and saving_share(state, prewarm_plan, cold_start_seconds) > saving_share(
        state, plain, cold_start_seconds
    ):
        return prewarm_plan
    return plain


def saving_share(state: WorkloadState, keep: KeepAlive, cold_start_seconds: float) -> float:
    """Share of an hour a replica released under `keep` is not paid for, over the histogram.

    Per gap of typical length g (the bin's geometric middle): without pre-warm the replica is off
    from the keep-alive K to g and then pays a cold start: g - K - cold start; with pre-warm at
    P it is off from K to P (a longer gap waits, paid, from P): min(g - K - cold start, P - K)."""
    if not math.isfinite(keep.keep_alive_seconds):
        return 0.0
    hours = max(state.observed_seconds, 1.0) / 3600.0
    saved = 0.0
    lower = 0.0
    for edge, count in zip(GAP_EDGES_SECONDS, state.gap_histogram, strict=False):
        if count > 0:
            saved += count * _saved_in_gap(math.sqrt(max(lower, edge / 2.0) * edge), keep, cold_start_seconds)
        lower = edge
    saved += state.gaps_out_of_bounds * _saved_in_gap(GAP_EDGES_SECONDS[-1], keep, cold_start_seconds)
    return min(1.0, saved / hours / 3600.0)


def _saved_in_gap(gap: float, keep: KeepAlive, cold_start_seconds: float) -> float:
    released = gap - keep.keep_alive_seconds - cold_start_seconds
    if keep.prewarm_seconds is not None:
        released = min(released, keep.prewarm_seconds - keep.keep_alive_seconds)
    return max(0.0, released)

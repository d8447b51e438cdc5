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

Pre-warm: when even the shortest gaps (`PREWARM_QUANTILE`) outlast keep-alive + one cold start,
a replica released at the keep-alive can be started again one cold start before the head of the
gap distribution; idle gaps then cost GPU time only from the pre-warm on.

Worked example (the unit tests use it): gaps of 240 s, 10 per hour, 300 requests in each burst's
first cold start, 3,000 requests per hour, objective 0.99, half the budget for cold starts:
affordable misses 0.5 x 0.01 x 3000 = 15 per hour; a miss-prone gap costs 300, so at most
15 / 300 = 0.05 per hour may exceed the keep-alive: 0.05 / 10 = 0.5 % of gaps. The 99.5th
percentile of the histogram (the 240 s bin's upper edge, 300 s) is the keep-alive.
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


def gap_quantile(state: WorkloadState, quantile: float) -> float:
    """Upper edge of the bin holding the `quantile` of gaps (inf when it lies out of bounds)."""
    total = gap_count(state)
    if total <= 0:
        return math.inf
    target = quantile * total
    running = 0.0
    for edge, count in zip(GAP_EDGES_SECONDS, state.gap_histogram, strict=False):
        running += count
        if running >= target - 1e-12:
            return edge
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
    tail = gap_quantile(state, 1.0 - allowed_share) if allowed_share < 1.0 else 0.0
    keep_alive = max(floor, tail * (1.0 + MARGIN)) if math.isfinite(tail) else math.inf
    head = gap_quantile(state, PREWARM_QUANTILE)
    prewarm: float | None = None
    until: float | None = None
    if math.isfinite(head) and math.isfinite(keep_alive):
        start = head * (1.0 - MARGIN) - cold_start_seconds - policy.decision_interval_seconds
        last = gap_quantile(state, TAIL_QUANTILE)
        if start > keep_alive and math.isfinite(last):
            prewarm, until = start, last * (1.0 + MARGIN)
    message = (
        f"{why}, {gaps_per_hour:.1f}/h; {burst:.1f} requests meet a burst's first cold start, "
        f"budget affords {affordable:.1f}/h: keep-alive covers {1.0 - allowed_share:.1%} of gaps = "
        + (f"{keep_alive:.0f}s" if math.isfinite(keep_alive) else "all (beyond the histogram)")
        + (f"; pre-warm after {prewarm:.0f}s idle" if prewarm is not None else "")
    )
    return KeepAlive(
        keep_alive, prewarm, until, representative=True, reason=reasons.KEEP_ALIVE_LEARNED, message=message
    )

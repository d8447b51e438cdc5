"""Table tests for the Auto rule chain: each row is a workload and the rule that must fire."""

from __future__ import annotations

from dataclasses import replace

import pytest

from llmscale.scaling import ScalingPolicy, Strategy, keepalive, reasons
from llmscale.scaling.strategy import StrategyContext, choose, evaluate
from llmscale.scaling.types import StrategyState, WorkloadState

HOUR = 3600.0


def workload(**values: object) -> WorkloadState:
    base = WorkloadState(
        first_time=0.0,
        last_time=4 * HOUR,
        observed_seconds=4 * HOUR,
        total_requests=4 * 3600.0,  # 1 req/s on average
        peak_load=2.0,
    )
    return replace(base, **values)


def context(policy: ScalingPolicy, state: WorkloadState, **values: float) -> StrategyContext:
    cold_start = values.get("cold_start_seconds", 45.0)
    fields: dict[str, object] = {
        "keep_alive": keepalive.plan(state, policy, cold_start),
        "policy": policy,
        "workload": state,
        "now": 4 * HOUR,
        "cold_start_seconds": 45.0,
        "load_replicas": 0.5,
        "sustainable_load_per_replica": 0.75,
    }
    fields.update(values)
    return StrategyContext(**fields)  # type: ignore[arg-type]


AUTO = ScalingPolicy()


def gaps(*bins: tuple[float, float]) -> list[float]:
    """A gap histogram: (count, bin upper edge) pairs."""
    histogram = [0.0] * len(keepalive.GAP_EDGES_SECONDS)
    for count, edge in bins:
        histogram[keepalive.GAP_EDGES_SECONDS.index(edge)] = count
    return histogram


# Twelve gaps of 420-600 s in four hours (3/h), 2 requests in each burst's first cold start.
# Budget for cold starts: 0.5 x 1 % x 3600 req/h = 18 req/h >= 3/h x 2: every gap may miss, so
# keep-alive is the idle window (60 s). A gap is typically sqrt(420 x 600) = 502 s; releasing saves
# 502 - 60 - 45 (the cold start paid again) = 397 s of each: 12 x 397 / 4 h = 1191 s/h = 33 %.
# (Pre-warming at 0.9 x 420 - 45 - 5 = 328 s would save only 328 - 60 = 268 s a gap.)
IDLE_CHEAP = {"gap_histogram": gaps((12, 600.0)), "burst_count": 12.0, "burst_requests": 24.0}
# Same gaps, 40 requests per burst: 3/h x 40 = 120 misses/h would exceed 18/h. Pre-warm fits: no
# gap ends before the pre-warmed replica is Ready (328 + 45 = 373 s < 420 s) or after the wait
# (1.1 x 600 = 660 s): 0 % miss. It saves 268 s a gap: 12 x 268 / 4 h = 804 s/h = 22 %.
IDLE_PREWARM = {"gap_histogram": gaps((12, 600.0)), "burst_count": 12.0, "burst_requests": 480.0}
# Irregular gaps (4 of 45-60 s, 4 of 420-600 s, 4 of 2700-3600 s), 40 requests per burst: at most
# 15 % of gaps may miss, so keep-alive covers the 85th percentile: the 3600 s bin x 1.1 = 3960 s,
# which covers the median gap (600 s > the 45 s cold start): bursts cannot be absorbed -> Warm.
# (No pre-warm: the head, 45 s, leaves no room for a cold start.)
IDLE_IRREGULAR = {
    "gap_histogram": gaps((4, 60.0), (4, 600.0), (4, 3600.0)),
    "burst_count": 12.0,
    "burst_requests": 480.0,
}


@pytest.mark.parametrize(
    ("policy", "workload_values", "context_values", "strategy", "reason"),
    [
        pytest.param(
            replace(AUTO, strategy=Strategy.WARM), {}, {}, Strategy.WARM, reasons.USER_SELECTED, id="fixed"
        ),
        pytest.param(
            AUTO, {"observed_seconds": 120.0}, {}, Strategy.AUTOSCALED, reasons.LEARNING_DEMAND, id="learning"
        ),
        pytest.param(AUTO, IDLE_CHEAP, {}, Strategy.SCALE_TO_ZERO, reasons.IDLE_FITS_ERROR_BUDGET, id="zero"),
        pytest.param(
            AUTO, IDLE_PREWARM, {}, Strategy.SCALE_TO_ZERO, reasons.IDLE_FITS_ERROR_BUDGET, id="zero-prewarm"
        ),
        pytest.param(
            AUTO, IDLE_IRREGULAR, {}, Strategy.WARM, reasons.COLD_STARTS_NOT_ABSORBED, id="budget-exceeded"
        ),
        pytest.param(
            replace(AUTO, min_replicas=1),
            IDLE_CHEAP,
            {},
            Strategy.AUTOSCALED,
            reasons.DEMAND_VARIES,
            id="min1",
        ),
        pytest.param(
            replace(AUTO, gpu_price_per_hour_usd=0.0),
            IDLE_CHEAP,
            {},
            Strategy.AUTOSCALED,
            reasons.DEMAND_VARIES,
            id="free-gpu-saves-nothing",
        ),
        pytest.param(
            AUTO,
            {"gap_histogram": gaps((2, 600.0)), "burst_count": 2.0, "burst_requests": 4.0},
            {},
            Strategy.AUTOSCALED,
            reasons.DEMAND_VARIES,
            id="rarely-idle",
        ),
        pytest.param(
            AUTO,
            {},
            {"cold_start_seconds": 2400.0},
            Strategy.WARM,
            reasons.COLD_START_EXCEEDS_DEMAND_CYCLE,
            id="slow-cold-start",
        ),
        pytest.param(
            AUTO, {"peak_load": 0.6}, {"load_replicas": 0.5}, Strategy.WARM, reasons.DEMAND_FLAT, id="flat"
        ),
        pytest.param(
            AUTO,
            {"peak_load": 3.0},
            {"load_replicas": 0.5},
            Strategy.AUTOSCALED,
            reasons.DEMAND_VARIES,
            id="varies",
        ),
    ],
)
def test_auto_rule_chain(
    policy: ScalingPolicy,
    workload_values: dict[str, object],
    context_values: dict[str, float],
    strategy: Strategy,
    reason: str,
) -> None:
    result = evaluate(context(policy, workload(**workload_values), **context_values))
    assert (result.strategy, result.reason) == (strategy, reason)
    assert result.message
    assert result.reason[0].isupper() and " " not in result.reason


def test_zero_message_quotes_the_numbers() -> None:
    result = evaluate(context(AUTO, workload(**IDLE_CHEAP)))
    assert "3.0/h" in result.message  # gaps per hour
    assert "budget affords 18.0/h" in result.message
    assert "zero saves 33% of a replica = $0.66/h" in result.message


def test_keep_alive_from_the_gap_histogram() -> None:
    cheap = keepalive.plan(workload(**IDLE_CHEAP), AUTO, 45.0)
    assert cheap.representative and cheap.keep_alive_seconds == AUTO.idle_window_seconds
    assert cheap.prewarm_seconds is None
    assert keepalive.saving_share(workload(**IDLE_CHEAP), cheap, 45.0) == pytest.approx(0.33, abs=0.005)
    irregular = keepalive.plan(workload(**IDLE_IRREGULAR), AUTO, 45.0)
    assert irregular.keep_alive_seconds == pytest.approx(3960.0)
    assert irregular.prewarm_seconds is None and irregular.reason == reasons.KEEP_ALIVE_LEARNED
    few = keepalive.plan(workload(gap_histogram=gaps((2, 600.0))), AUTO, 45.0)
    assert not few.representative and few.reason == reasons.KEEP_ALIVE_FALLBACK
    assert few.keep_alive_seconds == keepalive.FALLBACK_KEEP_ALIVE_SECONDS


def test_prewarm_at_the_head_of_regular_gaps() -> None:
    plan = keepalive.plan(workload(**IDLE_PREWARM), AUTO, 45.0)
    assert plan.keep_alive_seconds == AUTO.idle_window_seconds
    assert plan.prewarm_seconds == pytest.approx(328.0)
    assert plan.prewarm_until_seconds == pytest.approx(660.0)
    assert keepalive.saving_share(workload(**IDLE_PREWARM), plan, 45.0) == pytest.approx(0.2233, abs=0.001)


def test_switch_to_riskier_strategy_waits_for_the_dwell_time() -> None:
    state = StrategyState(current=Strategy.AUTOSCALED.value, since=4 * HOUR - 60)
    held = choose(context(AUTO, workload(**IDLE_CHEAP)), state)
    assert held.strategy is Strategy.AUTOSCALED
    assert held.reason == reasons.STRATEGY_DWELL
    later = choose(context(AUTO, workload(**IDLE_CHEAP), now=4 * HOUR + AUTO.strategy_dwell_seconds), state)
    assert later.strategy is Strategy.SCALE_TO_ZERO


def test_switch_to_safer_strategy_is_immediate() -> None:
    state = StrategyState(current=Strategy.SCALE_TO_ZERO.value, since=4 * HOUR - 10)
    result = choose(context(AUTO, workload(**IDLE_IRREGULAR)), state)
    assert result.strategy is Strategy.WARM
    assert result.reason == reasons.COLD_STARTS_NOT_ABSORBED

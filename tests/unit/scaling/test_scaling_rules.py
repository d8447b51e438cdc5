"""Table tests for the Auto rule chain: each row is a workload and the rule that must fire."""

from __future__ import annotations

from dataclasses import replace

import pytest

from llmscale.scaling import ScalingPolicy, Strategy, reasons
from llmscale.scaling.strategy import StrategyContext, choose, evaluate
from llmscale.scaling.types import StrategyState, WorkloadState

HOUR = 3600.0


def workload(**values: float) -> WorkloadState:
    base = WorkloadState(
        first_time=0.0,
        last_time=4 * HOUR,
        observed_seconds=4 * HOUR,
        total_requests=4 * 3600.0,  # 1 req/s on average
        peak_load=2.0,
    )
    return replace(base, **values)


def context(policy: ScalingPolicy, state: WorkloadState, **values: float) -> StrategyContext:
    fields = {
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
# Idle 30 % of four hours; 3 wake-ups/h x 2 requests = 6 req/h, budget 1 % x 3600 / 2 = 18 req/h.
IDLE_CHEAP = {"idle_seconds_long": 0.3 * 4 * HOUR, "wakeups": 12.0, "wake_requests": 24.0}
# Same idleness, but each wake-up meets 40 requests: 120 req/h > 18 req/h.
IDLE_COSTLY = {"idle_seconds_long": 0.3 * 4 * HOUR, "wakeups": 12.0, "wake_requests": 480.0}


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
        pytest.param(AUTO, IDLE_COSTLY, {}, Strategy.AUTOSCALED, reasons.DEMAND_VARIES, id="budget-exceeded"),
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
            {"idle_seconds_long": 0.05 * 4 * HOUR, "wakeups": 2.0, "wake_requests": 2.0},
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
    workload_values: dict[str, float],
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
    assert "30%" in result.message
    assert "3.0 wake-ups/h" in result.message
    assert "18.0 req/h" in result.message


def test_switch_to_riskier_strategy_waits_for_the_dwell_time() -> None:
    state = StrategyState(current=Strategy.AUTOSCALED.value, since=4 * HOUR - 60)
    held = choose(context(AUTO, workload(**IDLE_CHEAP)), state)
    assert held.strategy is Strategy.AUTOSCALED
    assert held.reason == reasons.STRATEGY_DWELL
    later = choose(context(AUTO, workload(**IDLE_CHEAP), now=4 * HOUR + AUTO.strategy_dwell_seconds), state)
    assert later.strategy is Strategy.SCALE_TO_ZERO


def test_switch_to_safer_strategy_is_immediate() -> None:
    state = StrategyState(current=Strategy.SCALE_TO_ZERO.value, since=4 * HOUR - 10)
    result = choose(context(AUTO, workload(**IDLE_COSTLY)), state)
    assert result.strategy is Strategy.AUTOSCALED
    assert result.reason == reasons.DEMAND_VARIES

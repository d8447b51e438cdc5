"""Forecast, capacity and demand models on their own."""

from __future__ import annotations

import math

import pytest

from llmscale.scaling import DecisionInputs, ScalingPolicy, capacity, demand, forecast, reasons
from llmscale.scaling.types import CapacityState, ForecastState, WorkloadState

POLICY = ScalingPolicy()
DAY = 86_400.0


def test_tokens_matter_more_than_requests() -> None:
    short = DecisionInputs(
        current_replicas=1,
        ready_replicas=1,
        request_rate_rps=10,
        prompt_tokens_per_second=10 * 150,
        generation_tokens_per_second=10 * 20,
    )
    long = DecisionInputs(
        current_replicas=1,
        ready_replicas=1,
        request_rate_rps=10,
        prompt_tokens_per_second=10 * 7000,
        generation_tokens_per_second=10 * 20,
    )
    assert (
        demand.measure(long, POLICY, WorkloadState(), drain_seconds=60.0).load_replicas
        > 5 * demand.measure(short, POLICY, WorkloadState(), drain_seconds=60.0).load_replicas
    )


def test_work_per_request_is_one_over_saturation() -> None:
    # 202 in / 179 out at 40k and 7.5k tok/s: 0.00505 + 0.02387 = 0.0289 s -> 34.6 req/s.
    assert 1 / demand.work_per_request(POLICY, 202, 179) == pytest.approx(34.6, rel=0.01)


def test_gateway_arrivals_count_when_engines_lag() -> None:
    inputs = DecisionInputs(
        current_replicas=0, ready_replicas=0, gateway_arrivals_rps=5.0, gateway_queue_depth=3
    )
    measured = demand.measure(inputs, POLICY, WorkloadState(), drain_seconds=60.0)
    assert measured.load_replicas == pytest.approx(5.0 * demand.work_per_request(POLICY, 1000, 200))
    assert measured.backlog_replicas > 0
    assert not measured.idle


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -3.0])
def test_nan_and_negative_rates_are_no_signal(bad: float) -> None:
    inputs = DecisionInputs(
        current_replicas=1, ready_replicas=1, request_rate_rps=bad, prompt_tokens_per_second=bad
    )
    assert demand.measure(inputs, POLICY, WorkloadState(), drain_seconds=60.0).load_replicas == 0.0


def test_holt_earns_its_place_on_a_ramp() -> None:
    """Ten minutes of a steady ramp (0.01 replica-units per 5 s): persistence is always 65 s x
    0.002/s = 0.13 behind, the trend model converges on the slope; once five minutes of outcomes
    are scored it is chosen, and its forecast leads the last sample."""
    state = ForecastState()
    for step in range(120):
        forecast.update(state, POLICY, 0.01 * step, step * 5.0, horizon_seconds=65.0)
    now = 119 * 5.0
    point, lower, upper, model, reason = forecast.predict_interval(state, POLICY, now, 65.0)
    assert reason == reasons.FORECAST_MODEL_SELECTED and model == "holt"
    assert point > 0.01 * 119 + 0.05  # the trend projects the ramp forward
    assert lower <= point <= upper


def test_persistence_until_outcomes_are_scored() -> None:
    state = ForecastState()
    for step in range(20):  # 100 s: fewer than five minutes of outcomes
        forecast.update(state, POLICY, 0.01 * step, step * 5.0, horizon_seconds=65.0)
    *_, model, reason = forecast.predict_interval(state, POLICY, 95.0, 65.0)
    assert (model, reason) == ("persistence", reasons.FORECAST_LEARNING)


def test_uncertainty_grows_with_noise() -> None:
    calm, noisy = ForecastState(), ForecastState()
    for step in range(200):
        forecast.update(calm, POLICY, 1.0, step * 5.0)
        forecast.update(noisy, POLICY, 1.0 + (0.8 if step % 2 else -0.8), step * 5.0)
    _, calm_upper = forecast.predict(calm, POLICY, 995.0, 65.0)
    _, noisy_upper = forecast.predict(noisy, POLICY, 995.0, 65.0)
    assert noisy_upper > calm_upper + 0.5


def test_profile_is_silent_until_it_spans_a_day() -> None:
    state = ForecastState()
    for step in range(720):  # one hour
        forecast.update(state, POLICY, 1.0, step * 5.0)
    assert forecast.profile_at(state, 1800.0) is None


def test_seeded_profile_predicts_the_morning_ramp() -> None:
    history = [(t, 4.0 if 9 * 3600 <= t % DAY < 17 * 3600 else 0.2) for t in range(0, int(3 * DAY), 300)]
    state = ForecastState()
    assert forecast.seed_profile(state, POLICY, ((float(t), v) for t, v in history)) == len(history)
    now = 3 * DAY + 9 * 3600 - 600  # 08:50 on day four
    forecast.update(state, POLICY, 0.2, now)
    assert forecast.profile_at(state, now + 1800) == pytest.approx(4.0, rel=0.05)
    # The profile's expectation at a horizon reaching 09:10 is what waking from zero acts on.
    expected = forecast.seasonal_expectation(state, POLICY, now, 1200.0)
    assert expected is not None and expected > 1.0


def test_capacity_shrinks_on_violations_and_stays_bounded() -> None:
    state = CapacityState()
    for step in range(500):
        load = capacity.sustainable_load(state, POLICY)  # violations at the believed capacity
        capacity.observe(
            state, POLICY, load_per_replica=load, ttft_p95_seconds=5.0, settled_seconds=600.0, now=step * 5.0
        )
    low, high = capacity.bounds(POLICY)
    assert capacity.sustainable_load(state, POLICY) == pytest.approx(low)
    for step in range(5000):
        load = capacity.sustainable_load(state, POLICY)
        capacity.observe(
            state, POLICY, load_per_replica=load, ttft_p95_seconds=0.05, settled_seconds=600.0, now=step * 5.0
        )
    assert capacity.sustainable_load(state, POLICY) == pytest.approx(high)
    assert high <= 0.98


def test_capacity_ignores_violations_above_the_believed_capacity() -> None:
    # Overload (we were short of replicas) says nothing against the per-replica estimate.
    state = CapacityState()
    for step in range(20):
        capacity.observe(
            state, POLICY, load_per_replica=1.5, ttft_p95_seconds=9.0, settled_seconds=600.0, now=step * 5.0
        )
    assert capacity.sustainable_load(state, POLICY) == POLICY.target_utilization


def test_capacity_ignores_near_idle_replicas() -> None:
    state = CapacityState()
    for step in range(20):
        capacity.observe(
            state, POLICY, load_per_replica=0.01, ttft_p95_seconds=9.0, settled_seconds=600.0, now=step * 5.0
        )
    assert state.observations == 0
    assert math.isclose(capacity.sustainable_load(state, POLICY), POLICY.target_utilization)


def test_capacity_blames_no_backlog_and_relaxes_back() -> None:
    state = CapacityState()
    # A cold-start backlog: TTFT is bad, but requests wait for replicas that are on their way.
    for step in range(40):
        capacity.observe(
            state,
            POLICY,
            load_per_replica=0.5,
            ttft_p95_seconds=5.0,
            settled_seconds=0.0,
            backlog_free=False,
            now=step * 5.0,
        )
    assert capacity.sustainable_load(state, POLICY) == POLICY.target_utilization
    # Nothing waits and TTFT is still bad at a load we called sustainable: the belief shrinks.
    for step in range(40, 80):
        capacity.observe(
            state, POLICY, load_per_replica=0.5, ttft_p95_seconds=5.0, settled_seconds=0.0, now=step * 5.0
        )
    shrunk = capacity.sustainable_load(state, POLICY)
    assert shrunk < POLICY.target_utilization * 0.8
    # Good latency again (settled fleet, lower load): the estimate relaxes back towards the prior.
    for step in range(80, 400):
        capacity.observe(
            state, POLICY, load_per_replica=0.3, ttft_p95_seconds=0.4, settled_seconds=600.0, now=step * 5.0
        )
    assert shrunk < capacity.sustainable_load(state, POLICY) <= POLICY.target_utilization
    assert capacity.sustainable_load(state, POLICY) > 0.95 * POLICY.target_utilization


def test_good_latency_teaches_only_a_settled_fleet() -> None:
    state = CapacityState()
    for step in range(100):
        capacity.observe(
            state, POLICY, load_per_replica=0.74, ttft_p95_seconds=0.1, settled_seconds=30.0, now=step * 5.0
        )
    assert capacity.sustainable_load(state, POLICY) == POLICY.target_utilization


def test_last_interval_burst_feeds_the_panic_path_only() -> None:
    inputs = DecisionInputs(
        current_replicas=2, ready_replicas=2, gateway_arrivals_rps=5.0, gateway_recent_arrivals_rps=50.0
    )
    measured = demand.measure(inputs, POLICY, WorkloadState(), drain_seconds=60.0)
    per_request = demand.work_per_request(POLICY, 1000, 200)
    assert measured.load_replicas == pytest.approx(5.0 * per_request)
    # 250 arrivals in the 5 s interval; the burst counts their Poisson lower bound,
    # 250 - 2 x sqrt(250) = 218.38, i.e. 43.68 req/s.
    assert POLICY.decision_interval_seconds == 5.0
    assert measured.burst_load_replicas == pytest.approx(43.675445 * per_request)
    # 2.26 replica-units arriving at 2 Ready replicas: the overflow piles up meanwhile.
    assert measured.backlog_replicas == pytest.approx(43.675445 * per_request - 2.0)


def test_poisson_noise_in_the_last_interval_is_not_a_burst() -> None:
    # 3 arrivals in 5 s where 1 req/s is the windowed rate: 3 - 2 x sqrt(3) < 0, no burst.
    inputs = DecisionInputs(
        current_replicas=1, ready_replicas=1, gateway_arrivals_rps=1.0, gateway_recent_arrivals_rps=0.6
    )
    measured = demand.measure(inputs, POLICY, WorkloadState(), drain_seconds=60.0)
    assert measured.burst_load_replicas == measured.load_replicas
    assert demand.burst_rate_lower_bound(0.6, 5.0) == 0.0
    assert demand.burst_rate_lower_bound(12.0, 5.0) == pytest.approx((60 - 2 * 60**0.5) / 5)

"""Timelines for what the decision core learns: request mix, throughput, keep-alive, forecast, Auto.

Expected values are computed by hand in the comments (the default policy: 40,000 prompt tok/s
and 7,500 generated tok/s of prior capacity, target utilisation 0.75, 5 s decisions).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest
from scaling_timeline_kit import RPS_PER_REPLICA

from llmscale.scaling import ScalingPolicy, Strategy, capacity, demand, forecast, reasons
from llmscale.scaling.types import CapacityState, ForecastState


def test_request_mix_is_learned_under_sustained_load(make_timeline) -> None:
    """Long prompts (12,000 in / 150 out) with requests waiting the whole time: the mix is still
    learned (it used to be learned only while nothing waited, so the 1000/200 prior stayed)."""
    timeline = make_timeline(ScalingPolicy(strategy=Strategy.AUTOSCALED, max_replicas=30))
    rps = 2.0
    timeline.run(
        900,
        rps=rps,
        prompt_tokens_per_second=rps * 12_000,
        generation_tokens_per_second=rps * 150,
        num_requests_waiting=20.0,
    )
    prompt, generation = demand.mean_lengths(timeline.state.workload)
    # Ratio of ten-minute sums; the 2 requests running count as admitted: 2 req/s x 600 s x
    # (1 - exp(-900 / 600)) = 932 completed, so 12,000 x 932 / 934 = 11,974 (0.2 % low).
    assert prompt == pytest.approx(12_000 * 932 / 934, rel=1e-3)
    assert generation == pytest.approx(150 * 932 / 934, rel=1e-3)
    # One request costs 12000 / 40000 + 150 / 7500 = 0.32 replica-seconds (the prior: 0.0517).
    assert demand.work_per_request(timeline.policy, prompt, generation) == pytest.approx(0.32, rel=3e-3)


def test_throughput_is_learned_from_saturated_engines() -> None:
    """Four saturated replicas (10 waiting each) complete 96,000 prompt tok/s: 24,000 each = 0.6
    of the prior's 40,000. Learning starts once saturation has lasted the 30 s rate window (the
    decisions at 0-25 s only start the run); the remaining 174 decisions x 5 s = 870 s with a
    300 s time constant give 0.6 + 0.4 x exp(-870 / 300) = 0.6220."""
    policy = ScalingPolicy()
    state = CapacityState()
    for tick in range(180):  # 15 minutes at 5 s
        capacity.observe_throughput(
            state,
            completed_load_per_replica=96_000 / 40_000 / 4,
            waiting_per_replica=10.0,
            kv_cache_usage=0.95,
            settled_seconds=600.0,
            dt=5.0,
            now=5.0 * tick,
        )
    scale = 0.6 + 0.4 * math.exp(-2.9)
    assert capacity.throughput_scale(state) == pytest.approx(scale, rel=1e-3)
    prefill, decode = capacity.tokens_per_second(state, policy)
    assert prefill == pytest.approx(0.75 * scale * 40_000, rel=1e-3)
    assert decode == pytest.approx(0.75 * scale * 7_500, rel=1e-3)


def test_a_queue_that_comes_and_goes_is_not_saturation() -> None:
    """A half-loaded replica under Poisson arrivals has a request waiting now and then (M/M/1
    at utilisation 0.5: two or more in the system a quarter of the time). Waiting seen at every
    other decision, or for 25 s at a stretch, never lasts a 30 s rate window: the belief stays."""
    state = CapacityState()

    def feed(ticks: range, waiting: Callable[[int], float]) -> float:
        for tick in ticks:
            capacity.observe_throughput(
                state, completed_load_per_replica=0.5, waiting_per_replica=waiting(tick),
                kv_cache_usage=0.3, settled_seconds=600.0, dt=5.0, now=5.0 * tick,
            )  # fmt: skip
        return capacity.throughput_scale(state)

    assert feed(range(360), lambda tick: 1.0 if tick % 2 else 0.0) == 1.0  # 30 minutes
    assert feed(range(360, 720), lambda tick: 1.0 if tick % 6 else 0.0) == 1.0
    # the same queue held for the whole window is saturation: the belief moves towards 0.5
    assert feed(range(720, 740), lambda _tick: 1.0) < 1.0


def test_unsaturated_engines_only_raise_the_throughput_belief() -> None:
    state = CapacityState()
    capacity.observe_throughput(
        state, completed_load_per_replica=0.3, waiting_per_replica=0.0, kv_cache_usage=0.2,
        settled_seconds=600.0, dt=5.0, now=0.0,
    )  # fmt: skip
    assert capacity.throughput_scale(state) == 1.0  # light load says nothing about saturation


def test_keep_alive_holds_the_fleet_through_a_silence(make_timeline) -> None:
    """Burst, 240 s silence, burst: a fixed 120 s delay used to drop the fleet just before the
    second burst. With no gap history the fallback keep-alive (600 s) holds the busy period's need."""
    policy = ScalingPolicy(strategy=Strategy.AUTOSCALED, max_replicas=20)
    timeline = make_timeline(policy)
    timeline.run(300, rps=3 * RPS_PER_REPLICA)
    busy = timeline.replicas
    assert busy >= 3
    timeline.run(240, rps=0.0)
    assert timeline.replicas >= 3
    assert timeline.last.reason == reasons.KEEP_ALIVE_HOLD
    first = timeline.step(rps=3 * RPS_PER_REPLICA)  # the second burst meets a Ready fleet
    assert timeline.ready >= 3 and first.desired_replicas >= 3
    # A silence longer than the keep-alive releases the capacity.
    timeline.run(300, rps=3 * RPS_PER_REPLICA)
    timeline.run(900, rps=0.0)
    assert timeline.replicas == 1


def test_a_burst_seen_first_by_the_direct_gateway_read_keeps_the_held_fleet(make_timeline) -> None:
    """Burst, 240 s silence, burst. The operator's direct gateway read shows the second burst's
    arrivals at once while Prometheus' windowed rates still read the silence for three ticks:
    the arrivals end the idle period, so the keep-alive no longer holds, and the scaler's averages
    (still those of the gap) wanted a scale-down at the burst's first tick. The fleet held for the
    burst stays until the stable window (60 s) has seen it."""
    policy = ScalingPolicy(strategy=Strategy.AUTOSCALED, max_replicas=20)
    timeline = make_timeline(policy)
    burst = 3 * RPS_PER_REPLICA
    timeline.run(300, rps=burst)
    timeline.run(240, rps=0.0)
    held = timeline.replicas
    assert held >= 3 and timeline.last.reason == reasons.KEEP_ALIVE_HOLD
    lagging = {"request_rate_rps": 0.0, "prompt_tokens_per_second": 0.0, "generation_tokens_per_second": 0.0,
               "gateway_arrivals_rps": 0.0, "num_requests_running": 5.0}  # fmt: skip
    onset = [timeline.step(rps=burst, gateway_recent_arrivals_rps=burst, **lagging) for _ in range(3)]
    assert onset[0].reason == reasons.KEEP_ALIVE_HOLD and "burst began 0s ago" in onset[0].message
    onset += [timeline.step(rps=burst, gateway_recent_arrivals_rps=burst) for _ in range(9)]
    assert min(d.desired_replicas for d in onset) >= held  # 60 s: never below the held fleet


def test_no_scale_down_while_a_backlog_drains(make_timeline) -> None:
    policy = ScalingPolicy(strategy=Strategy.AUTOSCALED, max_replicas=20)
    timeline = make_timeline(policy)
    timeline.run(300, rps=5 * RPS_PER_REPLICA)
    peak = timeline.replicas
    # Arrivals fall to one replica's worth but 40 requests wait in the engines for 5 minutes.
    timeline.run(300, rps=1 * RPS_PER_REPLICA, num_requests_waiting=40.0)
    assert timeline.replicas == peak
    assert timeline.last.reason == reasons.BACKLOG_DRAINING
    timeline.run(600, rps=1 * RPS_PER_REPLICA)
    assert timeline.replicas < peak


def test_backlog_in_tokens_sizes_the_burst_response(make_timeline) -> None:
    """Within one decision of 200 requests of 12,000-token prompts showing up as waiting, the fleet
    grows by the work they hold: 200 x 0.32 replica-seconds drained over the horizon (60 s cold
    start + 5 s) = 0.985 replica-units, 0.985 / 0.75 = 1.3 replicas on top of the arrivals' need."""
    policy = ScalingPolicy(strategy=Strategy.AUTOSCALED, max_replicas=20)
    timeline = make_timeline(policy, cold_start_seconds=60.0)
    lengths = {"prompt_tokens_per_second": 12_000 * 1.0, "generation_tokens_per_second": 150 * 1.0}
    timeline.run(900, rps=1.0, **lengths)  # learn the mix at 1 req/s = 0.32 replica-units
    before = timeline.replicas
    decision = timeline.step(rps=1.0, num_requests_waiting=200.0, **lengths)
    backlog_need = 200 * 0.32 / 65.0 / 0.75
    assert decision.desired_replicas >= math.ceil(0.32 / 0.75 + backlog_need - 1e-9)
    assert decision.desired_replicas > before


def test_forecaster_learns_a_sub_daily_burst_and_prewarms_ahead_of_it() -> None:
    """2 replica-units of load with a 5-minute burst to 8 every 30 minutes. Once two periods are
    seen the 30-minute profile beats persistence and is selected; exactly one horizon (65 s) before
    the next burst its forecast for the burst's first instant is last sample 2 + profile 5 (the
    edge between the 2 and 8 bins: linear between bin centres, (2 + 8) / 2) - profile(now) 2 = 5:
    the upper band already asks for the burst one cold start ahead. Persistence says 2."""
    policy = ScalingPolicy()
    state = ForecastState()
    horizon = 65.0
    now = 0.0
    while now < 3 * 1800:
        load = 8.0 if now % 1800 < 300 else 2.0
        forecast.update(state, policy, load, now, horizon)
        now += 5.0
    before_burst = 4 * 1800 - horizon - 30.0  # 30 s before the horizon reaches the burst ...
    while now <= before_burst + 30.0:  # ... then step to exactly one horizon before it
        forecast.update(state, policy, 8.0 if now % 1800 < 300 else 2.0, now, horizon)
        now += 5.0
    point, lower, upper, model, reason = forecast.predict_interval(state, policy, now - 5.0, horizon)
    assert (model, reason) == ("period1800", reasons.FORECAST_MODEL_SELECTED)
    assert point == pytest.approx(5.0, abs=0.3)
    assert upper >= point >= lower


def test_forecaster_falls_back_to_persistence_on_a_random_walk() -> None:
    """A random walk is best predicted by its last value: no model beats persistence by 5 %, and
    the status says so."""
    rng = random.Random(3)
    policy = ScalingPolicy()
    state = ForecastState()
    load = 5.0
    for step in range(720):  # one hour
        load = max(0.5, load + rng.gauss(0.0, 0.2))
        forecast.update(state, policy, load, step * 5.0, 65.0)
    *_, model, reason = forecast.predict_interval(state, policy, 719 * 5.0, 65.0)
    assert (model, reason) == ("persistence", reasons.FORECAST_PERSISTENCE)


def test_interval_covers_ninety_percent_of_noisy_outcomes() -> None:
    """Flat load with Gaussian noise (sd 0.3 around 4): the nominal 90 % interval of the chosen
    model covers 85-95 % of outcomes one horizon later."""
    rng = random.Random(11)
    policy = ScalingPolicy()
    state = ForecastState()
    horizon, lag = 65.0, 13
    loads = [4.0 + rng.gauss(0.0, 0.3) for _ in range(4 * 720)]
    bands: list[tuple[float, float]] = []
    for step, load in enumerate(loads):
        forecast.update(state, policy, load, step * 5.0, horizon)
        _, lower, upper, _, _ = forecast.predict_interval(state, policy, step * 5.0, horizon)
        bands.append((lower, upper))
    scored = [bands[step][0] <= loads[step + lag] <= bands[step][1] for step in range(720, len(loads) - lag)]
    assert 0.85 <= sum(scored) / len(scored) <= 0.95


def _tail_misses(adapt_rate: float, monkeypatch: pytest.MonkeyPatch) -> tuple[float, float, int]:
    """Eight hours of load whose noise changes regime: 15 calm minutes (sd 0.05), then 5 noisy
    ones (sd 0.6), over and over. Returns each tail's share of outcomes beyond it."""
    monkeypatch.setattr(forecast, "ADAPT_RATE", adapt_rate)
    rng = random.Random(5)
    policy = ScalingPolicy()
    state = ForecastState()
    horizon, lag = 65.0, 13
    loads = [4.0 + rng.gauss(0.0, 0.6 if step % 240 >= 180 else 0.05) for step in range(8 * 720)]
    bands: list[tuple[float, float]] = []
    for step, load in enumerate(loads):
        forecast.update(state, policy, load, step * 5.0, horizon)
        _, lower, upper, _, _ = forecast.predict_interval(state, policy, step * 5.0, horizon)
        bands.append((lower, upper))
    scored = range(720, len(loads) - lag)
    below = sum(loads[step + lag] < bands[step][0] for step in scored)
    above = sum(loads[step + lag] > bands[step][1] for step in scored)
    return below / len(scored), above / len(scored), len(scored)


def test_adaptive_conformal_interval_keeps_its_coverage_across_regime_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Noise that switches between calm and wild: a sliding window of past errors describes the
    last regime, so the plain 5th/95th percentiles miss about twice as often as they claim (each
    noisy stretch begins with a calm window). Adaptive conformal inference (Gibbs and Candes
    2021) bounds each tail's long-run miss rate: |misses/T - alpha| <= (max(alpha_1, 1 - alpha_1)
    + gamma) / (gamma T) = (0.95 + 0.005) / (0.005 x 5,027) = 0.038 here. (The paper's proof
    needs the interval at alpha <= 0 to be unbounded; here the widest is the window's extreme
    error and the level is clamped, so this checks that the bound still holds in practice.)"""
    gamma = forecast.ADAPT_RATE
    plain_below, plain_above, _ = _tail_misses(0.0, monkeypatch)
    assert plain_below + plain_above > 0.15  # the plain window covers less than 85 %
    below, above, count = _tail_misses(gamma, monkeypatch)
    bound = (0.95 + gamma) / (gamma * count)
    assert abs(below - 0.05) <= bound and abs(above - 0.05) <= bound
    assert 0.85 <= 1.0 - below - above <= 0.95


def _auto_day(make_timeline, load_at) -> tuple[list[int], list[str], set[str]]:  # type: ignore[no-untyped-def]
    policy = ScalingPolicy(strategy=Strategy.AUTO, max_replicas=20)
    timeline = make_timeline(policy, cold_start_seconds=60.0)
    seen: set[str] = set()
    for _ in range(round(4 * 3600 / policy.decision_interval_seconds)):
        decision = timeline.step(rps=load_at(timeline.now))
        seen.add(decision.strategy_reason)
    late = [replicas for when, replicas in timeline.history if when >= 3 * 3600]
    return late, [timeline.last.strategy.value], seen


def test_auto_chooses_differently_for_sparse_smooth_and_varying_traffic(make_timeline) -> None:
    """Four hours each; the last hour's replica counts differ as the strategies do.

    - sparse: one minute at 1 req/s every 20 minutes. Gaps of 1140 s (the 900-1200 s bin), 60
      requests in each burst's first cold start, ~180 requests/h: the budget affords 0.9 misses/h,
      so pre-warming is the plan (0.9 x 900 - 60 - 5 = 745 s, 0 % of gaps miss), saving
      min(1039 - 120, 745 - 60) = 685 s per gap, 57 % of a replica -> ScaleToZero, 0 in the gaps;
    - smooth: 2.5 replicas' worth all the time -> Warm (DemandFlat), one count;
    - varying: a 30-minute sinusoid between 1 and 5 replicas' worth -> Autoscaled, counts follow.
    """
    sparse, sparse_strategy, sparse_reasons = _auto_day(
        make_timeline, lambda t: 1.0 if t % 1200 < 60 else 0.0
    )
    smooth, smooth_strategy, _ = _auto_day(make_timeline, lambda t: 2.5 * RPS_PER_REPLICA)
    varying, varying_strategy, _ = _auto_day(
        make_timeline, lambda t: (3.0 + 2.0 * math.sin(2 * math.pi * t / 1800)) * RPS_PER_REPLICA
    )
    assert sparse_strategy == ["ScaleToZero"] and reasons.IDLE_FITS_ERROR_BUDGET in sparse_reasons
    assert min(sparse) == 0 and max(sparse) >= 1
    assert smooth_strategy == ["Warm"] and len(set(smooth)) == 1 and smooth[0] >= 3
    assert varying_strategy == ["Autoscaled"] and max(varying) - min(varying) >= 2


def test_prewarm_makes_the_sparse_burst_meet_a_ready_replica(make_timeline) -> None:
    policy = ScalingPolicy(strategy=Strategy.AUTO, max_replicas=20)
    timeline = make_timeline(policy, cold_start_seconds=60.0)
    held_at_burst_start = []
    for _ in range(round(4 * 3600 / policy.decision_interval_seconds)):
        rps = 1.0 if timeline.now % 1200 < 60 else 0.0
        if timeline.now % 1200 == 0 and timeline.now >= 3 * 3600:
            held_at_burst_start.append(timeline.ready)
        timeline.step(rps=rps)
    assert held_at_burst_start and all(ready >= 1 for ready in held_at_burst_start)
    assert any(decision.reason == reasons.PREWARM_GAP for decision in timeline.decisions)

"""Simulator fidelity: decode after prefill, equal starts, the modelled Prometheus, one
cold-start distribution. Expected values are worked out by hand in each test."""

from __future__ import annotations

import numpy as np
import pytest

from llmscale.sim.fleet import FleetConfig, simulate
from llmscale.sim.observe import MetricsRecorder, PrometheusModel, bucket_increase, counter_rate
from llmscale.sim.perfmodel import ReplicaPerformanceModel
from llmscale.sim.policies import get_policy
from llmscale.sim.policy import FleetObservation, SimContext
from llmscale.sim.replica import READY, SimReplica
from llmscale.sim.traces import Trace


@pytest.fixture(scope="module")
def h100_8b_32k() -> ReplicaPerformanceModel:
    return ReplicaPerformanceModel.for_deployment(
        "meta-llama/Llama-3.1-8B-Instruct", "H100-80GB", max_model_len=32768
    )


def _trace(arrivals: list[float], prompt: int = 202, output: int = 179) -> Trace:
    count = len(arrivals)
    return Trace(
        "t", np.asarray(arrivals, dtype=np.float64), np.full(count, prompt, np.int64),
        np.full(count, output, np.int64), "generic",
    )  # fmt: skip


class _Constant:
    """A test policy asking for a fixed count and keeping every observation."""

    name = "constant"

    def __init__(self, replicas: int, tick_seconds: float = 1.0) -> None:
        self.replicas = replicas
        self.tick_seconds = tick_seconds
        self.seen: list[FleetObservation] = []

    def prepare(self, context: SimContext) -> None:
        pass

    def decide(self, observation: FleetObservation) -> int:
        self.seen.append(observation)
        return self.replicas


# ---- each request's decode starts after its own prefill ---------------------------------------


def test_ten_long_prompts_finish_after_their_first_tokens(h100_8b_32k: ReplicaPerformanceModel) -> None:
    # The case: ten 30k-token prompts at t=0 with 20 output tokens each on one replica.
    model = h100_8b_32k
    replica = SimReplica(model, 0.0, 0.0)
    replica.state = READY
    prefill = model.prefill_compute_seconds(30_000)
    firsts = [replica.admit(i, 0.0, 30_000, 20, prefill)[0] for i in range(10)]
    finishes: list[float] = []
    for step in range(60):
        replica.advance(float(step), 1.0, finishes)
    assert len(finishes) == 10
    # Prompts go through one at a time: the k-th first token comes at least k prefills after t=0
    # (prefill(30k) ~ 1.4 s here, so the last first token is past 12 s).
    assert prefill > 1.0
    assert firsts[-1] >= 9 * prefill
    # Each request then needs 19 more decode steps, each at least the fixed step cost.
    floor = 19 * model.fixed_step_seconds
    for first, finish in zip(sorted(firsts), sorted(finishes), strict=True):
        assert finish >= first + 0.99 * floor
    assert max(finishes) > 9 * prefill  # not "all done at 5.99 s"


def test_a_request_in_prefill_is_not_in_the_decode_batch(h100_8b_32k: ReplicaPerformanceModel) -> None:
    model = h100_8b_32k
    replica = SimReplica(model, 0.0, 0.0)
    replica.state = READY
    first, _ = replica.admit(0, 0.0, 30_000, 2000, model.prefill_compute_seconds(30_000))
    # Admitted (holds a slot and its KV) but decoding nothing until its first token (> 1 s).
    assert replica.running == 1 and replica.decoding == 0
    assert replica.kv_reserved == 32_000
    assert replica.decode_step_seconds() == pytest.approx(model.fixed_step_seconds)
    whole_steps_before = int(first)
    for step in range(whole_steps_before):
        replica.advance(float(step), 1.0, [])
        assert replica.decoding == 0
    replica.advance(float(whole_steps_before), 1.0, [])  # the step in which its first token comes
    assert replica.decoding == 1


# ---- every policy starts from the same fleet -------------------------------------------------


def test_every_policy_starts_from_one_ready_replica(h100_8b_32k: ReplicaPerformanceModel) -> None:
    trace = _trace([float(t) for t in range(0, 120)])
    config = FleetConfig(model=h100_8b_32k, cold_start_seconds=40.0, cold_start_jitter=0.0)
    wants_four = _Constant(4)
    result = simulate(trace, wants_four, config)
    # At t=0 one replica is Ready (the equal start); the three more it asks for cold-start.
    assert wants_four.seen[0].ready_replicas == 1
    assert result.cold_starts == 3
    ready_at = [r for t, r in zip(result.series["time"], result.series["ready"], strict=True) if t == 40.0]
    assert ready_at == [4.0]  # Ready exactly one 40-s cold start later
    warm = simulate(trace, get_policy("warm"), config)
    assert warm.series["ready"][0] == 1.0  # warm no longer starts hot either


# ---- one cold-start distribution ------------------------------------------------------------


def test_the_kth_cold_start_lasts_as_long_for_every_policy(h100_8b_32k: ReplicaPerformanceModel) -> None:
    trace = _trace([float(t) for t in range(0, 200)])
    config = FleetConfig(model=h100_8b_32k, cold_start_seconds=40.0, cold_start_jitter=0.1, seed=3)
    three = simulate(trace, _Constant(3), config).series["cold_start_seconds"]
    five = simulate(trace, _Constant(5), config).series["cold_start_seconds"]
    assert len(three) == 2 and len(five) == 4
    # Ready is seen at whole steps: each sample is within [36, 44] rounded up to a step.
    assert all(36.0 <= s <= 45.0 for s in three + five)
    assert sorted(three) == sorted(five[:2]) or three == five[:2]


# ---- the modelled Prometheus -----------------------------------------------------------------


def test_query_range_holds_the_scrapes_of_the_rate_window() -> None:
    prometheus = PrometheusModel()  # 15 s engine scrapes, 30 s gateway scrapes, 30 s window, 1 s lag
    # now 100 s: evaluated at 99 s, the range (69, 99] holds the scrapes at 75 and 90 s.
    assert prometheus.samples(100.0, 15.0) == (75.0, 90.0)
    # The gateway is scraped every 30 s: (69, 99] holds only the 90-s scrape, and rate() needs two.
    assert prometheus.samples(100.0, 30.0) is None
    # Before two scrapes exist there is nothing: at 15 s the range (-16, 14] holds only t=0.
    assert prometheus.samples(15.0, 15.0) is None
    assert prometheus.samples(16.0, 15.0) == (0.0, 15.0)


def test_rates_gauges_and_histograms_come_from_scrapes() -> None:
    recorder = MetricsRecorder(steps=120, step_seconds=1.0)
    counts = np.zeros(23)
    counts[3] = 1.0
    for step in range(120):
        recorder.record(
            step, success=2 if step < 80 else 5, prompt_tokens=0.0, generation_tokens=0.0, arrivals=0,
            ttft_counts=counts, itl_counts=None, running=step, waiting=0, kv_usage=0.0, ready=1,
            provisioned=1, gateway_queue=0,
        )  # fmt: skip
    span = PrometheusModel().samples(100.0, 15.0)
    assert span == (75.0, 90.0)
    # 2/s until t=80, then 5/s: (5 x 2 + 10 x 5) / 15 = 4.0 req/s.
    assert counter_rate(recorder, recorder.success, span) == pytest.approx(4.0)
    assert bucket_increase(recorder, recorder.ttft_counts, span)[3] == pytest.approx(15.0)
    # The gauge is what the 90-s scrape saw (step 89 ended at 90 s), not the live value.
    assert recorder.running[recorder.index_at(90.0)] == 89.0


def test_a_burst_reaches_the_policy_one_scrape_and_the_lag_later(
    h100_8b_32k: ReplicaPerformanceModel,
) -> None:
    # Requests start at t=50; the first engine scrape that includes any is at t=60, answered 1 s
    # late, and a rate needs the 45-s scrape as well: first non-zero rate at t=61.
    trace = _trace([50.0 + 0.1 * i for i in range(300)], prompt=100, output=2)
    watcher = _Constant(1)
    simulate(trace, watcher, FleetConfig(model=h100_8b_32k))
    first_seen = next(o.now for o in watcher.seen if o.now > 1.0 and o.request_rate_rps > 0)
    assert first_seen == 61.0
    # The gateway is scraped every 15 s too (the chart's default, so that a 30-s rate window holds
    # two scrapes): its first rate is also at t=61, from the 45-s and 60-s scrapes: the arrivals
    # at 50.0, 50.1, ... 59.9 (100 of them) over 15 s = 6.67 req/s.
    gateway = next(o for o in watcher.seen if o.now > 1.0 and o.gateway_arrivals_rps > 0)
    assert gateway.now == 61.0
    assert gateway.gateway_arrivals_rps == pytest.approx(100 / 15, rel=0.02)

"""The step-level continuous-batching engine (vLLM V1-like scheduler)."""

from __future__ import annotations

import numpy as np
import pytest

from llmscale.errors import UserInputError
from llmscale.sim.engine import ContinuousBatchingEngine
from llmscale.sim.engine_replay import replay_on_engine
from llmscale.sim.perfmodel import ReplicaPerformanceModel


@pytest.fixture(scope="module")
def h100_8b() -> ReplicaPerformanceModel:
    return ReplicaPerformanceModel.for_deployment("llama-3-8b", "H100-80GB")


def test_single_request_prefill_then_one_token_per_step(h100_8b: ReplicaPerformanceModel) -> None:
    engine = ContinuousBatchingEngine(h100_8b)
    engine.add_request("a", 500, 3, now=0.0)
    assert engine.num_waiting == 1
    first = engine.step(0.0)
    assert first.first_token_ids == ("a",)
    assert first.duration_seconds == pytest.approx(h100_8b.prefill_seconds(500))
    assert engine.num_running == 1 and engine.kv_cache_usage > 0
    second = engine.step(first.duration_seconds)
    assert second.token_ids == ("a",) and second.first_token_ids == ()
    assert second.duration_seconds == pytest.approx(h100_8b.decode_step_seconds(1, 500))
    third = engine.step(1.0)
    assert third.finished_ids == ("a",)
    assert engine.idle and engine.kv_cache_usage == 0.0
    assert engine.step(2.0).duration_seconds == 0.0


def test_long_prompt_is_prefilled_in_chunks(h100_8b: ReplicaPerformanceModel) -> None:
    engine = ContinuousBatchingEngine(h100_8b.with_limits(max_num_batched_tokens=1000))
    engine.add_request("long", 2500, 2, now=0.0)
    results = [engine.step(0.0) for _ in range(3)]
    assert [r.first_token_ids for r in results] == [(), (), ("long",)]


def test_max_num_seqs_bounds_the_running_batch(h100_8b: ReplicaPerformanceModel) -> None:
    engine = ContinuousBatchingEngine(h100_8b.with_limits(max_num_seqs=4))
    for index in range(10):
        engine.add_request(str(index), 100, 50, now=0.0)
    engine.step(0.0)
    assert engine.num_running == 4 and engine.num_waiting == 6


def test_full_kv_cache_preempts_the_newest_request(h100_8b: ReplicaPerformanceModel) -> None:
    tiny = ReplicaPerformanceModel.from_parameters(
        model_name="tiny", gpu_name="H100-80GB", tensor_parallel_size=1, weights_bytes=10**9,
        active_parameters=5 * 10**8, num_layers=8, attention_width=1024, kv_bytes_per_token=1024,
        kv_cache_tokens=64, max_model_len=64, hbm_bandwidth_bytes_per_second=3.35e12,
    )  # fmt: skip
    engine = ContinuousBatchingEngine(tiny)
    engine.add_request("old", 16, 30, now=0.0)
    engine.add_request("new", 16, 30, now=0.0)
    preempted: list[str] = []
    finished: list[str] = []
    for _ in range(200):
        result = engine.step(0.0)
        preempted += result.preempted_ids
        finished += result.finished_ids
        if engine.idle:
            break
    assert "new" in preempted and "old" not in preempted
    assert sorted(finished) == ["new", "old"]


def test_cancel_frees_the_cache(h100_8b: ReplicaPerformanceModel) -> None:
    engine = ContinuousBatchingEngine(h100_8b)
    engine.add_request("a", 300, 100, now=0.0)
    engine.step(0.0)
    engine.cancel("a")
    engine.cancel("unknown")
    assert engine.idle and engine.kv_cache_usage == 0.0


def test_bad_requests_are_rejected(h100_8b: ReplicaPerformanceModel) -> None:
    engine = ContinuousBatchingEngine(h100_8b)
    engine.add_request("a", 10, 10, now=0.0)
    with pytest.raises(UserInputError, match="already"):
        engine.add_request("a", 10, 10, now=0.0)
    with pytest.raises(UserInputError, match=">= 1"):
        engine.add_request("b", 0, 10, now=0.0)


def test_ttft_is_short_at_16_rps_and_grows_past_saturation(h100_8b: ReplicaPerformanceModel) -> None:
    rng = np.random.default_rng(7)
    count = 800
    inputs = np.full(count, 202, dtype=np.int64)
    outputs = np.full(count, 179, dtype=np.int64)
    moderate = replay_on_engine(h100_8b, np.cumsum(rng.exponential(1 / 16, count)), inputs, outputs)
    assert float(np.percentile(moderate.ttft_seconds, 95)) < 0.150
    overloaded = replay_on_engine(h100_8b, np.cumsum(rng.exponential(1 / 60, count)), inputs, outputs)
    assert float(np.percentile(overloaded.ttft_seconds, 95)) > 1.0

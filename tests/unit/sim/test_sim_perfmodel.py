"""The replica performance model lands on the published vLLM figures (DESIGN.md section 5)."""

from __future__ import annotations

import pytest

from llmscale.errors import UserInputError
from llmscale.sim.perfmodel import ReplicaPerformanceModel

SHAREGPT_IN, SHAREGPT_OUT = 202, 179


@pytest.mark.parametrize(
    ("model", "gpu", "tp", "published_rps", "tolerance"),
    [
        ("llama-3-8b", "H100-80GB", None, 37.0, 0.20),
        ("llama-3-8b", "A100-80GB", None, 19.0, 0.20),
        ("llama-3-70b", "H100-80GB", 4, 17.0, 0.25),
        ("llama-3-70b", "A100-80GB", 4, 8.5, 0.25),
    ],
)
def test_saturation_matches_published_vllm_benchmarks(
    model: str, gpu: str, tp: int | None, published_rps: float, tolerance: float
) -> None:
    replica = ReplicaPerformanceModel.for_deployment(model, gpu, tp)
    rps = replica.saturation_requests_per_second(SHAREGPT_IN, SHAREGPT_OUT)
    assert published_rps * (1 - tolerance) <= rps <= published_rps * (1 + tolerance)


def test_step_costs_grow_with_batch_context_and_prompt() -> None:
    replica = ReplicaPerformanceModel.for_deployment("llama-3-8b", "A100-80GB")
    # Llama-3.1-8B on A100: ~8.5 ms/token at batch 1, ~16 ms at batch 32 (TP2 profile; 1 GPU is slower).
    assert 0.008 <= replica.decode_step_seconds(1, 300) <= 0.014
    assert 0.014 <= replica.decode_step_seconds(32, 32 * 300) <= 0.022
    assert replica.decode_step_seconds(64, 64 * 300) > replica.decode_step_seconds(32, 32 * 300)
    assert replica.decode_step_seconds(32, 32 * 4000) > replica.decode_step_seconds(32, 32 * 300)
    # A 2k-token prefill is ~130 ms on A100 (TP2 profile); one GPU lands within 100-200 ms.
    assert 0.100 <= replica.prefill_seconds(2048) <= 0.200
    assert replica.prefill_seconds(4096) > 2 * replica.prefill_seconds(2048) - replica.fixed_step_seconds


def test_70b_on_4_h100_per_token_and_prefill() -> None:
    replica = ReplicaPerformanceModel.for_deployment("llama-3-70b", "H100-80GB", 4)
    assert replica.tensor_parallel_size == 4
    assert 0.015 <= replica.decode_step_seconds(1, 300) <= 0.037
    assert 0.150 <= replica.prefill_seconds(2048) <= 0.250


def test_itl_floor_is_at_least_weights_over_bandwidth() -> None:
    replica = ReplicaPerformanceModel.for_deployment("llama-3-8b", "H100-80GB")
    assert replica.itl_floor_seconds() >= replica.weights_bytes / 3.35e12


def test_kv_capacity_comes_from_the_planner() -> None:
    from llmscale.planner import plan

    replica = ReplicaPerformanceModel.for_deployment("llama-3-8b", "H100-80GB")
    assert replica.kv_cache_tokens == plan("llama-3-8b", "H100-80GB").kv_cache_tokens


def test_long_contexts_are_limited_by_kv_cache() -> None:
    replica = ReplicaPerformanceModel.for_deployment("llama-3-8b", "H100-80GB")
    assert replica.saturated_batch_size(202, 179) == replica.max_num_seqs
    assert replica.saturated_batch_size(7000, 1000) < replica.max_num_seqs
    assert replica.saturation_requests_per_second(7000, 1000) < replica.saturation_requests_per_second(
        202, 179
    )


def test_cold_start_default_from_model_size() -> None:
    small = ReplicaPerformanceModel.for_deployment("llama-3-8b", "H100-80GB")
    large = ReplicaPerformanceModel.for_deployment("llama-3-70b", "H100-80GB", 4)
    assert 35 <= small.cold_start_seconds <= 60
    assert 120 <= large.cold_start_seconds <= 240


def test_unknown_gpu_and_model_are_user_errors() -> None:
    with pytest.raises(UserInputError, match="B200"):
        ReplicaPerformanceModel.for_deployment("llama-3-8b", "B200")
    with pytest.raises(UserInputError, match="no-such-model"):
        ReplicaPerformanceModel.for_deployment("no-such-model", "H100-80GB")

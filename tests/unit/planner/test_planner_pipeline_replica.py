"""The performance model of a multi-node (pipeline-parallel) replica: step cost, cold start, GPUs.

Expected values come from the derivation in planner/pipeline_replica.py (checked by hand here,
with the single-node model of the same node as the reference) and from physics: one token still
streams every weight at one node's bandwidth (DESIGN.md: the ITL floor is weight bytes /
(HBM bandwidth x TP)), so pipeline stages cannot lower the per-token floor.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmscale.cli import main
from llmscale.planner import pipeline_replica
from llmscale.planner.perfmodel import COLD_START_FIXED_SECONDS, ReplicaPerformanceModel

BIG = "llama-3.1-405b"
TRACE = str(
    Path(__file__).resolve().parents[3] / ".." / "shared" / "traces" / "AzureLLMInferenceTrace_code.csv"
)


@pytest.fixture(scope="module")
def group() -> ReplicaPerformanceModel:
    return ReplicaPerformanceModel.for_deployment(BIG, "H100-80GB")


@pytest.fixture(scope="module")
def node(group: ReplicaPerformanceModel) -> ReplicaPerformanceModel:
    """One 8 x H100 node holding every layer (as if it had the memory): the single-node formula."""
    return ReplicaPerformanceModel.from_parameters(
        model_name=group.model_name,
        gpu_name="H100-80GB",
        tensor_parallel_size=8,
        weights_bytes=group.weights_bytes,
        active_parameters=405_853_388_800,
        num_layers=126,
        attention_width=16384,
        kv_bytes_per_token=516096,
        kv_cache_tokens=group.kv_cache_tokens,
        max_model_len=group.max_model_len,
        hbm_bandwidth_bytes_per_second=3.35e12,
    )


def transfer() -> float:
    # 16384 hidden x 2 bytes (bf16) per token over 50 GB/s
    return 16384 * 2 / 50e9


def test_the_405b_replica_is_two_nodes_and_sixteen_gpus(group: ReplicaPerformanceModel) -> None:
    assert (group.tensor_parallel_size, group.pipeline_parallel_size, group.gpus) == (8, 2, 16)


def test_per_token_floor_is_still_all_weights_at_one_nodes_bandwidth(group: ReplicaPerformanceModel) -> None:
    physical_floor = 405.85e9 * 2 / (8 * 3.35e12)  # 30.3 ms: bf16 weights / (TP x HBM bandwidth)
    assert group.itl_floor_seconds() > physical_floor
    assert group.itl_floor_seconds() < 1.6 * physical_floor


def test_batch_terms_are_spread_over_both_nodes_and_each_step_pays_one_hop(
    group: ReplicaPerformanceModel, node: ReplicaPerformanceModel
) -> None:
    hop = pipeline_replica.INTER_NODE_HOP_SECONDS
    assert group.fixed_step_seconds == pytest.approx(node.fixed_step_seconds + hop)
    # 64 sequences of 2k context: the batch-proportional part halves, the fixed part does not
    one_node = node.decode_step_seconds(64, 64 * 2048)
    two_nodes = group.decode_step_seconds(64, 64 * 2048)
    variable = one_node - node.fixed_step_seconds
    expected = node.fixed_step_seconds + hop + variable / 2 + 64 * transfer()
    assert two_nodes == pytest.approx(expected)
    assert group.saturation_requests_per_second(202, 179) > node.saturation_requests_per_second(202, 179)


def test_group_cold_start_loads_stages_in_parallel_then_forms(group: ReplicaPerformanceModel) -> None:
    whole = COLD_START_FIXED_SECONDS + 0.85 * group.weights_bytes / 1e9  # single-node formula
    expected = COLD_START_FIXED_SECONDS + (whole - COLD_START_FIXED_SECONDS) / 2 + 20.0
    assert group.cold_start_seconds == pytest.approx(expected)
    assert group.cold_start_seconds < whole
    # DESIGN.md: 70B on one node starts in 1.5-4 min; each 405B node loads ~2.7x more
    assert 4 * 60 < group.cold_start_seconds < 10 * 60


def test_single_node_models_are_unchanged() -> None:
    model = ReplicaPerformanceModel.for_deployment("llama-3.1-70b", "H100-80GB", 4)
    assert model.pipeline_parallel_size == 1 and model.gpus == 4
    assert model.across_nodes(1, 8192, 2) is model


def test_simulate_sizes_and_costs_a_405b_deployment(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--trace", TRACE, "--duration", "300", "--model", BIG, "--gpu", "H100-80GB"]
    assert main([*argv, "--policy", "warm", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["gpus_per_replica"] == 16
    (warm,) = document["policies"]
    # GPU-hours are whole groups: a multiple of 16 GPUs x the simulated hours
    replicas = warm["gpu_hours"] / 16 / (document["duration_seconds"] / 3600)
    assert replicas == pytest.approx(round(replicas), rel=0.05) and replicas >= 1


def test_policy_from_spec_counts_every_gpu_of_a_group() -> None:
    from llmscale.api import LLMDeployment
    from llmscale.scaling import PolicySettings, policy_from_spec

    spec = {
        "model": {"name": "meta-llama/Llama-3.1-405B-Instruct"},
        "resources": {"gpu": {"product": "H100-80GB"}},
        "engine": {"maxModelLen": 8192},
    }
    resource = LLMDeployment.model_validate({"metadata": {"name": "big", "namespace": "a"}, "spec": spec})
    policy = policy_from_spec(resource.spec, PolicySettings())
    assert policy.gpus_per_replica == 16
    assert policy.cold_start_seconds == pytest.approx(
        ReplicaPerformanceModel.for_deployment(BIG, "H100-80GB", max_model_len=8192).cold_start_seconds
    )

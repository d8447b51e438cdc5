"""Multi-node plans (tensor parallel within a node, pipeline parallel across nodes).

Sources of the expected values:
- vLLM docs, "Parallelism and Scaling" (docs/serving/parallelism_scaling.md): a model too large
  for one node runs with tensor_parallel_size = GPUs per node and pipeline_parallel_size =
  nodes, e.g. 8 and 2 on two 8-GPU nodes.
- LeaderWorkerSet v0.8.0, docs/examples/vllm/GPU/lws.yaml: Llama-3.1-405B-Instruct served by a
  group of size 2 (leader + 1 worker), `nvidia.com/gpu: 8` each, `--tensor-parallel-size 8
  --pipeline_parallel_size 2`.
- Hugging Face, "Llama 3.1 - 405B, 70B & 8B with multilinguality and long context" (2024-07):
  405B needs 810 GB in FP16/BF16, 405 GB in FP8; one 8 x H100-80GB node has 640 GB.
- vllm/distributed/utils.py `get_pp_indices`: layers // stages per stage, the remainder one
  each to the stages before the last.
- Llama-3.1-405B config.json: hidden 16384, 126 layers, 128 heads, 8 KV heads (head dim 128),
  intermediate 53248, vocab 128256, untied embeddings.
"""

from __future__ import annotations

import json
import math

import pytest

from llmscale.cli import main
from llmscale.errors import UserInputError
from llmscale.planner import plan
from llmscale.planner.gpus import GIB
from llmscale.planner.pipeline import stage_layers

# Hand computation from the config (bf16 = 2 bytes per parameter).
HIDDEN, LAYERS, KV_HEADS, HEAD_DIM, INTERMEDIATE, VOCAB = 16384, 126, 8, 128, 53248, 128256
PER_LAYER_PARAMETERS = (
    2 * HIDDEN * HIDDEN  # q and o projections (128 heads x 128 = 16384)
    + 2 * HIDDEN * KV_HEADS * HEAD_DIM  # k and v
    + 3 * HIDDEN * INTERMEDIATE  # gate, up, down
    + 2 * HIDDEN  # two RMSNorms
)
EMBEDDING_PARAMETERS = VOCAB * HIDDEN


def test_405b_bf16_on_h100_is_two_nodes_of_eight_as_vllm_and_lws_document() -> None:
    result = plan("llama-3.1-405b", "H100-80GB")
    assert result.fits
    assert (result.tensor_parallel_size, result.pipeline_parallel_size) == (8, 2)
    assert (result.nodes_per_replica, result.gpus_per_node, result.gpus) == (2, 8, 16)
    assert result.inter_node_note is not None and "2 nodes" in result.inter_node_note


def test_405b_bf16_weights_match_the_published_810_gb() -> None:
    result = plan("llama-3.1-405b", "H100-80GB")
    assert result.weights_gib * GIB == pytest.approx(810e9, rel=0.01)


def test_405b_bf16_per_gpu_weights_are_one_stage_of_63_layers_over_8_gpus() -> None:
    # The first stage holds 63 layers plus the input embedding, sharded 8 ways.
    stage_bytes = (63 * PER_LAYER_PARAMETERS + EMBEDDING_PARAMETERS) * 2
    result = plan("llama-3.1-405b", "H100-80GB")
    assert result.weights_per_gpu_gib == pytest.approx(stage_bytes / 8 / GIB, abs=0.01)


def test_405b_kv_bytes_and_capacity_follow_from_the_stage_layout() -> None:
    result = plan("llama-3.1-405b", "H100-80GB")
    # K and V, 8 KV heads x 128 x 2 bytes, 126 layers: the whole replica's bytes per token.
    assert result.kv_bytes_per_token == 2 * KV_HEADS * HEAD_DIM * 2 * LAYERS == 516096
    # One GPU of a stage holds 63 layers x 1 KV head: 32,256 bytes per token. Its KV room lies
    # between 0.9 x memory - weights (no overheads) and the same minus 5 GiB of overheads.
    per_gpu_per_token = 63 * 2 * 1 * HEAD_DIM * 2
    room = result.usable_memory_per_gpu_gib - result.weights_per_gpu_gib
    upper = room * GIB / per_gpu_per_token
    lower = (room - 5) * GIB / per_gpu_per_token
    assert lower < result.kv_cache_tokens < upper
    assert result.kv_cache_tokens // result.max_model_len == result.max_concurrent_sequences


def test_405b_bf16_does_not_fit_one_node_and_says_so_with_numbers() -> None:
    # 810 GB of weights > 8 x 80 GB: a single node is refused when multi-node is off.
    result = plan("llama-3.1-405b", "H100-80GB", max_nodes=1)
    assert not result.fits and result.nodes_per_replica == 1
    reason = result.reason or ""
    assert "8 x H100-80GB" in reason and "GiB per GPU" in reason and "at most 1 node" in reason


def test_405b_fp8_stays_on_one_node() -> None:
    # 405 GB of FP8 weights fit one 8 x 80 GB node (vLLM's Llama 3.1 FAQ serves it with TP 8).
    result = plan("llama-3.1-405b-fp8", "H100-80GB", max_model_len=8192)
    assert result.fits and result.nodes_per_replica == 1 and result.pipeline_parallel_size == 1


def test_smaller_gpus_need_more_nodes_by_the_memory_arithmetic() -> None:
    # 810 GB over nodes of 8 x 40 GB at 0.9 utilisation: at least ceil(810 / 288) = 3 nodes.
    result = plan("llama-3.1-405b", "A100-40GB", max_model_len=8192)
    assert result.fits
    assert result.nodes_per_replica >= math.ceil(810 / (8 * 40 * 0.9))
    assert result.gpus == 8 * result.nodes_per_replica


def test_refusal_beyond_the_node_ceiling_names_the_ceiling_and_the_numbers() -> None:
    # 8 x L4 (24 GB) per node: 4 nodes hold 768 GB < 810 GB.
    result = plan("llama-3.1-405b", "L4", max_model_len=8192)
    assert not result.fits
    assert result.nodes_per_replica == 4 == result.max_nodes_per_replica
    assert "4 nodes of 8 x L4" in (result.reason or "") and "GiB per GPU" in (result.reason or "")


def test_cost_counts_every_gpu_of_the_group() -> None:
    result = plan("llama-3.1-405b", "H100-80GB", gpu_price_per_hour_usd=2.5)
    assert result.gpu_cost_per_hour == pytest.approx(16 * 2.5)


def test_exact_node_count() -> None:
    result = plan("llama-3.1-405b", "H100-80GB", nodes=3)
    assert (result.nodes_per_replica, result.gpus_per_node, result.gpus) == (3, 8, 24)
    assert result.kv_cache_tokens > plan("llama-3.1-405b", "H100-80GB").kv_cache_tokens


def test_single_node_models_are_unchanged_by_the_node_ceiling() -> None:
    one = plan("llama-3.1-70b", "H100-80GB", max_model_len=32768, max_nodes=1)
    many = plan("llama-3.1-70b", "H100-80GB", max_model_len=32768)
    assert one == many.model_copy(update={"max_nodes_per_replica": 1})
    assert many.nodes_per_replica == 1 and many.inter_node_note is None


@pytest.mark.parametrize(
    ("layers", "stages", "expected"),
    [(126, 2, (63, 63)), (126, 4, (31, 32, 32, 31)), (32, 3, (11, 11, 10)), (80, 1, (80,))],
)
def test_stage_layers_follow_vllm_get_pp_indices(layers: int, stages: int, expected: tuple[int, ...]) -> None:
    assert stage_layers(layers, stages) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": 0}, "--nodes: value 0 is invalid"),
        ({"max_nodes": 17}, "--max-nodes: value 17 is invalid"),
        ({"nodes": 200}, "--nodes: value 200 is invalid"),
    ],
)
def test_bad_node_counts_are_one_clear_error(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        plan("llama-3.1-405b", "H100-80GB", **kwargs)


def test_cli_json_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "--model", "llama-3.1-405b", "--gpu", "H100-80GB", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["nodes_per_replica"] == 2 and data["gpus_per_node"] == 8
    assert data["pipeline_parallel_size"] == 2 and data["gpus"] == 16
    for key in ("weights_per_gpu_gib", "kv_cache_tokens", "inter_node_note", "max_nodes_per_replica"):
        assert key in data


def test_cli_refusal_beyond_max_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "--model", "llama-3.1-405b", "--gpu", "H100-80GB", "--max-nodes", "1"])
    assert code == 1
    assert "DOES NOT FIT" in capsys.readouterr().out

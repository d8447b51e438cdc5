"""plan(): the vLLM budget, tensor-parallel choice, quantisation, and published KV capacities."""

from __future__ import annotations

import pytest

from llmscale.errors import UserInputError
from llmscale.planner import GPU_CATALOG, ContextTooLongError, GPUSpec, get_gpu, plan
from llmscale.planner.gpus import GIB

LLAMA2_7B_CONFIG = {
    "model_type": "llama",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "intermediate_size": 11008,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "torch_dtype": "float16",
}
RTX_3090 = GPUSpec("RTX-3090", int(23.58 * GIB), 0.936e12, 0.3, "NVIDIA-GeForce-RTX-3090", (8, 6))


# ---- published vLLM KV-cache capacities (startup logs), within +-10 % ---------------------------
# Each older log predates CUDA-graph budgeting (graphs were captured after the KV cache was sized,
# outside it), which enforce_eager=True reproduces; max_num_batched_tokens/max_num_seqs are what
# that version profiled with.


def test_llama3_8b_on_h100_matches_vllm_pr_10511() -> None:
    # vllm-project/vllm PR #10511 (2024-12): `vllm serve meta-llama/Meta-Llama-3-8B` on H100,
    # total_gpu_memory 79.22 GiB x 0.90, available_kv_cache_memory 53.29 GiB
    # -> 53.29 GiB / 128 KiB per token / 16 = 27,284 blocks.
    published_blocks = int(53.29 * GIB / (128 * 1024) / 16)
    result = plan("meta-llama/Meta-Llama-3-8B", "H100-80GB", max_num_batched_tokens=8192, max_num_seqs=256,
                  enforce_eager=True)  # fmt: skip
    assert result.weights_gib == pytest.approx(14.96, rel=0.01)  # the log: "model weights take 14.96GiB"
    assert result.kv_cache_blocks == pytest.approx(published_blocks, rel=0.10)


def test_llama2_7b_on_a100_matches_vllm_pr_2031() -> None:
    # vllm-project/vllm PR #2031 (2023-12): Llama2-7B, TP=1, 1x A100-80GB: "# GPU blocks: 7351"
    result = plan(LLAMA2_7B_CONFIG, "A100-80GB", gpus=1, max_num_batched_tokens=4096, max_num_seqs=256,
                  enforce_eager=True)  # fmt: skip
    assert result.kv_cache_blocks == pytest.approx(7351, rel=0.10)


def test_llama31_8b_on_rtx3090_matches_vllm_issue_10517() -> None:
    # vllm-project/vllm issue #10517 (2024-12): Llama-3.1-8B-Instruct on an RTX 3090 (23.58 GiB),
    # gpu_memory_utilization 0.90. --max-model-len 20000: "# GPU blocks: 1952"; 29000: 1478 blocks
    # and vLLM refused to start (29000 > 23648 tokens). That version profiled max_model_len tokens.
    at_20k = plan("llama-3.1-8b", RTX_3090, gpus=1, max_model_len=20000, max_num_batched_tokens=20000,
                  max_num_seqs=256, enforce_eager=True)  # fmt: skip
    assert at_20k.kv_cache_blocks == pytest.approx(1952, rel=0.10)
    assert at_20k.fits
    at_29k = plan("llama-3.1-8b", RTX_3090, gpus=1, max_model_len=29000, max_num_batched_tokens=29000,
                  max_num_seqs=256, enforce_eager=True)  # fmt: skip
    assert at_29k.kv_cache_blocks == pytest.approx(1478, rel=0.10)
    assert not at_29k.fits
    assert "29000" in (at_29k.reason or "")


# ---- the budget arithmetic ----------------------------------------------------------------------


def test_budget_terms_add_up_and_capacity_is_whole_blocks() -> None:
    result = plan("llama-3-8b", "L4", max_model_len=8192)
    kv_per_gpu = (
        result.usable_memory_per_gpu_gib
        - result.weights_per_gpu_gib
        - result.activation_peak_per_gpu_gib
        - result.cuda_graph_per_gpu_gib
        - result.non_torch_per_gpu_gib
    )
    assert result.kv_cache_gib == pytest.approx(kv_per_gpu, abs=0.01)
    assert result.kv_cache_tokens == result.kv_cache_blocks * 16
    assert result.kv_cache_tokens == pytest.approx(kv_per_gpu * GIB / result.kv_bytes_per_token, abs=16)
    assert result.max_concurrent_sequences == result.kv_cache_blocks // (8192 // 16)
    assert result.usable_memory_per_gpu_gib == pytest.approx(0.9 * get_gpu("L4").memory_gib, abs=0.001)


def test_weights_per_quantization() -> None:
    params = 8_030_261_248
    embeddings = 2 * 128256 * 4096  # input embedding + LM head: stay 16 bit
    norms = 32 * 2 * 4096 + 4096
    linear = params - embeddings - norms

    def gib(result_method: str) -> float:
        return plan("llama-3-8b", "H100-80GB", quantization=result_method, max_model_len=4096).weights_gib

    assert gib("bf16") == pytest.approx(params * 2 / GIB, abs=0.001)
    assert gib("fp32") == pytest.approx(params * 4 / GIB, abs=0.001)
    assert gib("fp8") == pytest.approx((linear + 2 * (embeddings + norms)) / GIB, abs=0.001)
    awq_bytes_per_weight = 0.5 + (2 + 0.5) / 128  # 4-bit + fp16 scale and 4-bit zero per 128
    assert gib("awq") == pytest.approx(
        (linear * awq_bytes_per_weight + 2 * (embeddings + norms)) / GIB, abs=0.001
    )
    assert gib("gptq") == gib("awq")
    assert gib("bitsandbytes") == pytest.approx((linear * 0.5625 + 2 * (embeddings + norms)) / GIB, abs=0.001)
    assert gib("awq") < gib("bitsandbytes") < gib("int8") < gib("fp8") + 0.01 < gib("bf16")


def test_itl_floor_and_cost() -> None:
    result = plan("llama-3-70b", "H100-80GB", gpus=4, max_model_len=8192)
    weight_bytes = result.weights_gib * GIB
    assert result.itl_floor_seconds == pytest.approx(weight_bytes / (4 * 3.35e12), rel=1e-3)
    assert result.gpu_cost_per_hour == pytest.approx(4 * GPU_CATALOG["H100-80GB"].price_per_hour_usd)
    cheaper = plan("llama-3-70b", "H100-80GB", gpus=4, max_model_len=8192, gpu_price_per_hour_usd=2.0)
    assert cheaper.gpu_cost_per_hour == pytest.approx(8.0)


def test_moe_itl_floor_reads_only_the_active_experts() -> None:
    result = plan("mixtral-8x7b", "H100-80GB", gpus=2, max_model_len=8192)
    active_bytes = result.active_parameter_count * 2
    assert result.itl_floor_seconds == pytest.approx(active_bytes / (2 * 3.35e12), rel=1e-3)


# ---- tensor parallel ----------------------------------------------------------------------------


def test_picks_smallest_tensor_parallel_size_that_fits() -> None:
    assert plan("llama-3-8b", "H100-80GB").tensor_parallel_size == 1
    seventy_b = plan("llama-3.1-70b", "H100-80GB", max_model_len=32768)
    assert seventy_b.tensor_parallel_size == 4  # 131 GiB of weights: TP2 leaves no room at 32k
    assert seventy_b.fits and seventy_b.gpus == 4
    assert not plan("llama-3.1-70b", "H100-80GB", gpus=2, max_model_len=32768).fits


def test_nothing_fits_returns_largest_valid_size_with_numbers() -> None:
    result = plan("llama-3.1-405b", "L4", max_model_len=8192, max_nodes=1)
    assert not result.fits
    assert result.tensor_parallel_size == 8
    assert "does not fit on up to 8 x L4" in (result.reason or "")
    assert "GiB" in (result.reason or "")


def test_tensor_parallel_must_divide_heads_and_respect_kv_heads() -> None:
    # Qwen2.5-7B: 28 attention heads -> 8 is not allowed
    with pytest.raises(UserInputError, match=r"--gpus: value 8 .* 28 attention heads are not divisible by 8"):
        plan("qwen2.5-7b", "L4", gpus=8, max_model_len=4096)
    # Phi-3-medium: 40 heads, 10 KV heads -> 4 divides the heads but not the KV heads
    with pytest.raises(UserInputError, match="10 KV heads"):
        plan("phi-3-medium", "L4", gpus=4)
    assert plan("phi-3-medium", "L4", gpus=2).tensor_parallel_size == 2


def test_awq_group_size_must_divide_each_ranks_slice() -> None:
    # Qwen2.5-72B: intermediate 29568 / 8 = 3696, not a multiple of 128 (Qwen pads its AWQ checkpoint)
    with pytest.raises(UserInputError, match="group size 128"):
        plan("qwen2.5-72b", "L4", gpus=8, quantization="awq", max_model_len=4096)
    assert plan("qwen2.5-72b", "L4", gpus=8, quantization="bf16", max_model_len=4096).gpus == 8


@pytest.mark.parametrize("gpus", [0, -1, 16])
def test_bad_gpu_counts(gpus: int) -> None:
    with pytest.raises(UserInputError, match=f"--gpus: value {gpus}"):
        plan("llama-3-8b", "L4", gpus=gpus)


# ---- dtype and quantisation rules ----------------------------------------------------------------


def test_dtype_auto_follows_vllm() -> None:
    fp32_checkpoint = {**LLAMA2_7B_CONFIG, "torch_dtype": "float32"}
    assert plan(fp32_checkpoint, "H100-80GB", gpus=1).dtype == "float16"  # float32 serves in fp16
    assert plan("llama-3-8b", "H100-80GB").dtype == "bfloat16"  # bf16 stays bf16
    assert plan("gemma-2-9b", "H100-80GB").dtype == "bfloat16"  # Gemma 2 fp32 -> bf16 (fp16 overflows)
    assert plan("llama-3-8b", "T4", gpus=2, max_model_len=4096).dtype == "float16"  # T4 has no bf16
    assert plan("gemma-2-9b", "T4", gpus=4, max_model_len=4096).dtype == "float32"  # nor Gemma fp16
    assert plan("llama-3-8b", "H100-80GB", dtype="float32").weights_gib == pytest.approx(29.92, abs=0.01)


@pytest.mark.parametrize(
    ("model", "gpu", "quantization", "message"),
    [
        ("llama-3-8b", "T4", "fp8", "'fp8' is impossible on T4"),
        ("llama-3-8b", "T4", "bf16", "bfloat16 is impossible on T4"),
        ("qwen2.5-7b-awq", "L4", "gptq", "is a awq checkpoint"),
        ("llama-3.1-405b-fp8", "H100-80GB", "bf16", "is a fp8 checkpoint"),
        ("llama-3-8b", "L4", "int3", "'int3' is not supported"),
        ("gemma-2-9b", "H100-80GB", "fp16", "float16 is impossible for google/gemma-2-9b-it"),
    ],
)
def test_impossible_quantizations(model: str, gpu: str, quantization: str, message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        plan(model, gpu, quantization=quantization, max_model_len=4096)


def test_prequantised_checkpoint_loads_as_itself() -> None:
    result = plan("qwen2.5-7b-awq", "L4", max_model_len=8192)
    assert result.quantization == "awq-4bit"
    assert result.notes == ()  # no "needs an offline-quantised checkpoint" note: it is one
    assert plan("qwen2.5-7b", "L4", quantization="awq", max_model_len=8192).notes


def test_context_longer_than_the_model_is_refused_with_both_numbers() -> None:
    with pytest.raises(ContextTooLongError, match=r"value 16384 exceeds .* 8192 tokens"):
        plan("llama-3-8b", "H100-80GB", max_model_len=16384)


def test_default_context_is_the_models_and_longest_fit_is_reported() -> None:
    result = plan("llama-3.1-8b", "L4", gpus=1)
    assert result.max_model_len == 131072
    assert not result.fits
    assert 0 < result.max_fitting_model_len < 131072
    assert f"longest context that fits is {result.max_fitting_model_len}" in (result.reason or "")
    assert plan("llama-3.1-8b", "L4", gpus=1, max_model_len=result.max_fitting_model_len).fits


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"gpu_memory_utilization": 0.0}, "--gpu-memory-utilization"),
        ({"gpu_memory_utilization": 1.5}, "--gpu-memory-utilization"),
        ({"kv_cache_dtype": "int4"}, "--kv-cache-dtype"),
        ({"max_model_len": 0}, "--max-model-len"),
        ({"dtype": "float8"}, "--dtype"),
    ],
)
def test_bad_values_name_the_flag(kwargs: dict[str, object], flag: str) -> None:
    with pytest.raises(UserInputError, match=flag):
        plan("llama-3-8b", "L4", **kwargs)  # type: ignore[arg-type]


# ---- GPU catalog --------------------------------------------------------------------------------


def test_gpu_catalog_matches_design_and_gfd_labels() -> None:
    expected = {
        "H200": ("NVIDIA-H200", 4.8),
        "H100-80GB": ("NVIDIA-H100-80GB-HBM3", 3.35),
        "A100-80GB": ("NVIDIA-A100-SXM4-80GB", 2.0),
        "A100-40GB": ("NVIDIA-A100-SXM4-40GB", 1.56),
        "L40S": ("NVIDIA-L40S", 0.864),
        "L4": ("NVIDIA-L4", 0.3),
        "A10G": ("NVIDIA-A10G", 0.6),
        "T4": ("Tesla-T4", 0.32),
        "RTX-4090": ("NVIDIA-GeForce-RTX-4090", 1.0),
    }
    assert {name: (spec.gfd_product, spec.hbm_bandwidth_bytes_per_second / 1e12) for name, spec in
            GPU_CATALOG.items()} == expected  # fmt: skip
    assert all(spec.price_per_hour_usd > 0 for spec in GPU_CATALOG.values())


def test_get_gpu_accepts_spellings_and_rejects_unknown() -> None:
    assert get_gpu("h100-80gb").name == "H100-80GB"
    assert get_gpu("NVIDIA-H100-80GB-HBM3").name == "H100-80GB"
    assert get_gpu("rtx 4090").name == "RTX-4090"
    with pytest.raises(UserInputError, match="--gpu: value 'B300' is not a known GPU"):
        get_gpu("B300")


# ---- published weight sizes and qualitative fits --------------------------------------------------


def test_llama31_405b_fp8_weights_match_vllm_issue_6746() -> None:
    # vllm-project/vllm issue #6746 (2024-07): Meta-Llama-3.1-405B-Instruct-FP8 on 8x H100, each rank
    # "Loading model weights took 57.7520 GB" (vLLM divides by 2**30). Meta's checkpoint keeps every
    # attention block and the first and last MLP in bf16; quantising everything would give 47.7 GiB.
    result = plan("llama-3.1-405b-fp8", "H100-80GB", gpus=8, max_model_len=4096)
    assert result.quantization == "fp8"
    assert result.weights_per_gpu_gib == pytest.approx(57.752, rel=0.03)


def test_llama31_8b_weights_match_vllm_issue_10517() -> None:
    # vllm-project/vllm issue #10517: Llama-3.1-8B-Instruct "Loading model weights took 14.9888 GB"
    assert plan("llama-3.1-8b", "L4", gpus=1, max_model_len=1024).weights_gib == pytest.approx(
        14.9888, rel=0.01
    )


def test_fits_reported_in_vllm_issue_6689() -> None:
    # vllm-project/vllm issue #6689 (Llama 3.1 FAQ): "vllm serve meta-llama/Meta-Llama-3.1-405B-Instruct-FP8
    # --tensor-parallel-size 8 --max-model-len 4096 works well on A100-80GB:8", and the 8B model runs on
    # one L4 with --max-model-len 1024.
    assert plan("llama-3.1-405b-fp8", "A100-80GB", gpus=8, max_model_len=4096).fits
    assert plan("llama-3.1-8b", "L4", gpus=1, max_model_len=1024).fits

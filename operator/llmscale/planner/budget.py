"""vLLM's per-GPU memory budget: what is left for the KV cache after weights and overheads.

vLLM (v1 `gpu_worker.determine_available_memory`) profiles one dummy forward pass at the
largest batch it will schedule, then:

    kv_cache_bytes = total_gpu_memory x gpu_memory_utilization
                     - weights - peak activation - non-torch memory (- CUDA graphs)

We cannot run the profiler, so each term is modelled (constants and sources in
docs/planner.md):

* peak activation: a prefill of `max_num_batched_tokens` tokens holds the MLP's gate/up
  output (2 x intermediate), its activated half, the fused QKV output and two hidden-size
  buffers in the activation dtype; MoE layers hold `top_k` copies per token (fused-MoE
  intermediate caches). The sampler's dummy run adds `max_num_seqs x vocab` float32 logits
  plus one float32 copy (probabilities). Against vLLM's logs for Llama-3-8B this gives 1.12 GiB
  where vLLM logged 1.26 GiB (8192 tokens) and 2.38 GiB where it logged 2.07 GiB (20000 tokens).
* non-torch memory (CUDA context, cuBLAS workspaces, NCCL/custom all-reduce buffers):
  0.2 GiB on one GPU, 0.5 GiB with tensor parallelism.
* CUDA graphs: captured after the KV cache is sized in older releases (outside the budget),
  estimated and subtracted up front by newer ones (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS);
  we subtract 0.25 GiB + 0.01 GiB per layer unless `enforce_eager` (no graphs).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmscale.planner.architecture import ModelArchitecture
from llmscale.planner.gpus import GIB, GPUSpec

BLOCK_SIZE_TOKENS = 16  # vLLM's default KV block (page) size on CUDA
NON_TORCH_BYTES_SINGLE_GPU = int(0.2 * GIB)
NON_TORCH_BYTES_TENSOR_PARALLEL = int(0.5 * GIB)
CUDA_GRAPH_BASE_BYTES = int(0.25 * GIB)
CUDA_GRAPH_BYTES_PER_LAYER = int(0.01 * GIB)
SAMPLER_FLOAT32_COPIES = 2  # logits + probabilities, float32, max_num_seqs x vocab each
HIDDEN_SIZED_BUFFERS = 2  # residual and normed input (fitted to the two logs cited in docs/planner.md)
# vLLM's serving defaults depend on the GPU: large-memory GPUs (>= 70 GiB) other than the A100
# (where a bigger chunk lowered throughput) get a bigger prefill chunk and more concurrent
# sequences (vllm/engine/arg_utils.py EngineArgs.get_batch_defaults, OpenAI server context).
LARGE_GPU_MEMORY_BYTES = 70 * GIB
MAX_NUM_BATCHED_TOKENS_LARGE_GPU = 8192
MAX_NUM_BATCHED_TOKENS_SMALL_GPU = 2048
MAX_NUM_SEQS_LARGE_GPU = 1024
MAX_NUM_SEQS_SMALL_GPU = 256


@dataclass(frozen=True)
class EngineDefaults:
    max_num_batched_tokens: int
    max_num_seqs: int


def engine_defaults(gpu: GPUSpec) -> EngineDefaults:
    if gpu.memory_bytes >= LARGE_GPU_MEMORY_BYTES and "a100" not in gpu.gfd_product.lower():
        return EngineDefaults(MAX_NUM_BATCHED_TOKENS_LARGE_GPU, MAX_NUM_SEQS_LARGE_GPU)
    return EngineDefaults(MAX_NUM_BATCHED_TOKENS_SMALL_GPU, MAX_NUM_SEQS_SMALL_GPU)


def activation_peak_bytes(
    model: ModelArchitecture,
    *,
    tensor_parallel_size: int,
    activation_dtype_bytes: int,
    max_num_batched_tokens: int,
    max_num_seqs: int,
) -> int:
    """Peak PyTorch memory of vLLM's profiling forward pass on one GPU, beyond the weights."""
    tp = tensor_parallel_size
    qkv_width = (model.q_width + 2 * model.kv_width) // tp
    if model.is_moe:
        expert_size = model.moe_intermediate_size or model.intermediate_size
        mlp_width = model.num_experts_per_token * (3 * expert_size // tp + model.hidden_size)
    else:
        mlp_width = 3 * model.intermediate_size // tp
    per_token = (mlp_width + qkv_width + HIDDEN_SIZED_BUFFERS * model.hidden_size) * activation_dtype_bytes
    sampler = max_num_seqs * model.vocab_size * 4 * SAMPLER_FLOAT32_COPIES
    return max_num_batched_tokens * per_token + sampler


def non_torch_bytes(tensor_parallel_size: int) -> int:
    return NON_TORCH_BYTES_SINGLE_GPU if tensor_parallel_size == 1 else NON_TORCH_BYTES_TENSOR_PARALLEL


def cuda_graph_bytes(model: ModelArchitecture, layers: int | None = None) -> int:
    """CUDA graphs of one GPU holding `layers` decoder layers (default: all, one pipeline stage)."""
    count = model.num_hidden_layers if layers is None else layers
    return CUDA_GRAPH_BASE_BYTES + CUDA_GRAPH_BYTES_PER_LAYER * count


def kv_heads_per_gpu(model: ModelArchitecture, tensor_parallel_size: int) -> int:
    """KV heads each rank stores: vLLM replicates KV heads when TP exceeds their number."""
    return max(1, model.num_key_value_heads // tensor_parallel_size)


def kv_bytes_per_token_per_layer_per_gpu(
    model: ModelArchitecture, tensor_parallel_size: int, kv_bytes: int
) -> int:
    return 2 * kv_heads_per_gpu(model, tensor_parallel_size) * model.head_dim * kv_bytes


def kv_bytes_per_sequence_per_gpu(
    model: ModelArchitecture, tensor_parallel_size: int, kv_bytes: int, sequence_tokens: int
) -> int:
    """KV bytes of one sequence on one GPU, in whole blocks; sliding-window layers keep only the window.

    vLLM's hybrid KV-cache manager frees a sliding-window layer's blocks once they fall out of
    the window; it keeps the window plus one partially filled block.
    """
    per_layer_token = kv_bytes_per_token_per_layer_per_gpu(model, tensor_parallel_size, kv_bytes)
    full_blocks = -(-sequence_tokens // BLOCK_SIZE_TOKENS)
    total = model.full_attention_layers * full_blocks * BLOCK_SIZE_TOKENS * per_layer_token
    if model.sliding_window_layers and model.sliding_window is not None:
        window_blocks = min(full_blocks, -(-model.sliding_window // BLOCK_SIZE_TOKENS) + 1)
        total += model.sliding_window_layers * window_blocks * BLOCK_SIZE_TOKENS * per_layer_token
    return total

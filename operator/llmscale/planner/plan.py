"""`plan()`: will this model fit this GPU under vLLM, on how many GPUs, with what KV capacity?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llmscale.errors import UserInputError
from llmscale.planner import budget
from llmscale.planner.architecture import ModelArchitecture
from llmscale.planner.catalog import resolve_model
from llmscale.planner.gpus import GIB, GPUSpec, get_gpu
from llmscale.planner.quantization import (
    DTYPE_BYTES,
    ONLINE_METHODS,
    WeightPrecision,
    resolve_precision,
    weight_bytes,
)

# Tensor-parallel sizes tried automatically: powers of two within one 8-GPU node.
AUTO_TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)
MAX_GPUS_PER_NODE = 8
_KV_CACHE_DTYPES: dict[str, int] = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


class ContextTooLongError(UserInputError):
    """--max-model-len exceeds the model's maximum context (vLLM refuses to start)."""


class Plan(BaseModel):
    """The planner's answer for one model on one GPU type. Memory in GiB (2**30 bytes)."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpu: str
    gfd_product: str
    fits: bool
    reason: str | None
    tensor_parallel_size: int
    gpus: int
    quantization: str  # fp32, bf16, fp16, fp8, int8, awq-4bit, gptq-4bit, bnb-nf4
    dtype: str  # activation dtype vLLM will run
    kv_cache_dtype: str  # "auto" (= dtype) or "fp8"
    parameter_count: int
    active_parameter_count: int  # per token; differs from parameter_count for MoE
    weights_gib: float  # whole model, all GPUs
    weights_per_gpu_gib: float
    gpu_memory_gib: float  # per GPU, as CUDA reports it
    gpu_memory_utilization: float
    usable_memory_per_gpu_gib: float  # gpu_memory_gib x gpu_memory_utilization
    activation_peak_per_gpu_gib: float
    cuda_graph_per_gpu_gib: float
    non_torch_per_gpu_gib: float
    kv_cache_gib: float  # all GPUs together
    kv_bytes_per_token: int  # one token, all layers, all GPUs
    kv_cache_blocks: int  # vLLM's "# GPU blocks" (16 tokens each)
    kv_cache_tokens: int  # KV capacity of one replica
    max_model_len: int
    model_max_len: int  # the model's own maximum context
    max_fitting_model_len: int  # longest context with room for one sequence (0 = weights do not fit)
    max_concurrent_sequences: int  # full-length sequences whose KV fits at once
    max_num_seqs: int  # vLLM's default cap on running sequences for this GPU
    max_num_batched_tokens: int
    itl_floor_seconds: float  # active weight bytes / (TP x HBM bandwidth)
    gpu_price_per_hour_usd: float
    gpu_cost_per_hour: float  # price x GPUs, USD
    notes: tuple[str, ...] = ()

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _check_positive_fraction(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise UserInputError(
            f"--gpu-memory-utilization: value {value!r} is invalid; expected a number in (0, 1]"
        )
    return float(value)


def _kv_dtype_bytes(kv_cache_dtype: str, precision: WeightPrecision, gpu: GPUSpec) -> int:
    key = kv_cache_dtype.strip().lower()
    if key == "auto":
        return DTYPE_BYTES[precision.dtype]
    if key not in _KV_CACHE_DTYPES:
        raise UserInputError(
            f"--kv-cache-dtype: value {kv_cache_dtype!r} is not supported; expected auto or fp8"
        )
    if gpu.compute_capability < (8, 0):
        raise UserInputError(f"--kv-cache-dtype: value {kv_cache_dtype!r} is impossible on {gpu.name}")
    return _KV_CACHE_DTYPES[key]


def tensor_parallel_problem(model: ModelArchitecture, precision: WeightPrecision, tp: int) -> str | None:
    """Why vLLM would refuse this tensor-parallel size, or None when it is valid."""
    if model.num_attention_heads % tp:
        return f"{model.num_attention_heads} attention heads are not divisible by {tp}"
    kv = model.num_key_value_heads
    if (tp >= kv and tp % kv) or (tp < kv and kv % tp):
        return f"{kv} KV heads can be neither split across nor replicated onto {tp} GPUs"
    if precision.method in ("awq", "gptq") and precision.group_size and precision.group_size > 0:
        width = (
            (model.moe_intermediate_size or model.intermediate_size)
            if model.is_moe
            else model.intermediate_size
        )
        if (width // tp) % precision.group_size or width % tp:
            return (
                f"intermediate size {width} / {tp} GPUs is not a multiple of the "
                f"{precision.method} group size {precision.group_size}"
            )
    return None


def _largest_fitting_len(
    model: ModelArchitecture, tp: int, kv_bytes: int, kv_budget: float, limit: int
) -> int:
    if kv_budget <= 0 or budget.kv_bytes_per_sequence_per_gpu(model, tp, kv_bytes, 1) > kv_budget:
        return 0
    low, high = 1, limit  # invariant: `low` fits
    while low < high:
        middle = (low + high + 1) // 2
        if budget.kv_bytes_per_sequence_per_gpu(model, tp, kv_bytes, middle) <= kv_budget:
            low = middle
        else:
            high = middle - 1
    return low


def _evaluate(
    model: ModelArchitecture,
    gpu: GPUSpec,
    precision: WeightPrecision,
    tp: int,
    max_model_len: int,
    gpu_memory_utilization: float,
    kv_cache_dtype: str,
    kv_bytes: int,
    notes: tuple[str, ...],
    defaults: budget.EngineDefaults,
    enforce_eager: bool,
) -> Plan:
    weights = weight_bytes(model, precision)
    replication = budget.kv_heads_per_gpu(model, tp) / model.num_key_value_heads
    weights_per_gpu = (weights.total - weights.kv_projection) / tp + weights.kv_projection * replication
    usable = gpu.memory_bytes * gpu_memory_utilization
    activation = budget.activation_peak_bytes(
        model,
        tensor_parallel_size=tp,
        activation_dtype_bytes=DTYPE_BYTES[precision.dtype],
        max_num_batched_tokens=defaults.max_num_batched_tokens,
        max_num_seqs=defaults.max_num_seqs,
    )
    non_torch = budget.non_torch_bytes(tp)
    cuda_graphs = 0 if enforce_eager else budget.cuda_graph_bytes(model)
    kv_budget = usable - weights_per_gpu - activation - non_torch - cuda_graphs
    per_token_per_gpu = (
        budget.kv_bytes_per_token_per_layer_per_gpu(model, tp, kv_bytes) * model.num_hidden_layers
    )
    blocks = max(0, int(kv_budget // (per_token_per_gpu * budget.BLOCK_SIZE_TOKENS)))
    sequence_bytes = budget.kv_bytes_per_sequence_per_gpu(model, tp, kv_bytes, max_model_len)
    concurrent = max(0, int(kv_budget // sequence_bytes))
    fitting_len = _largest_fitting_len(model, tp, kv_bytes, kv_budget, model.max_position_embeddings)
    fits = concurrent >= 1
    reason: str | None = None
    if kv_budget <= 0:
        reason = (
            f"weights need {weights_per_gpu / GIB:.2f} GiB per GPU at tensor parallel {tp}, plus "
            f"{(activation + non_torch + cuda_graphs) / GIB:.2f} GiB of activations and runtime overhead, "
            f"but {gpu.name} offers {usable / GIB:.2f} GiB "
            f"({gpu.memory_gib:.2f} GiB x {gpu_memory_utilization:g})"
        )
    elif not fits:
        reason = (
            f"max-model-len {max_model_len} needs {sequence_bytes * tp / GIB:.2f} GiB of KV cache "
            "per sequence "
            f"but only {kv_budget * tp / GIB:.2f} GiB remain for the KV cache at tensor parallel {tp}; "
            f"the longest context that fits is {fitting_len} tokens"
        )
    return Plan(
        model=model.name,
        gpu=gpu.name,
        gfd_product=gpu.gfd_product,
        fits=fits,
        reason=reason,
        tensor_parallel_size=tp,
        gpus=tp,
        quantization=precision.label,
        dtype=precision.dtype,
        kv_cache_dtype="auto" if kv_cache_dtype.strip().lower() == "auto" else "fp8",
        parameter_count=model.parameter_count(),
        active_parameter_count=model.active_parameter_count(),
        weights_gib=round(weights.total / GIB, 3),
        weights_per_gpu_gib=round(weights_per_gpu / GIB, 3),
        gpu_memory_gib=round(gpu.memory_gib, 3),
        gpu_memory_utilization=gpu_memory_utilization,
        usable_memory_per_gpu_gib=round(usable / GIB, 3),
        activation_peak_per_gpu_gib=round(activation / GIB, 3),
        cuda_graph_per_gpu_gib=round(cuda_graphs / GIB, 3),
        non_torch_per_gpu_gib=round(non_torch / GIB, 3),
        kv_cache_gib=round(max(0.0, kv_budget) * tp / GIB, 3),
        kv_bytes_per_token=per_token_per_gpu * tp,
        kv_cache_blocks=blocks,
        kv_cache_tokens=blocks * budget.BLOCK_SIZE_TOKENS,
        max_model_len=max_model_len,
        model_max_len=model.max_position_embeddings,
        max_fitting_model_len=fitting_len,
        max_concurrent_sequences=concurrent,
        max_num_seqs=defaults.max_num_seqs,
        max_num_batched_tokens=defaults.max_num_batched_tokens,
        itl_floor_seconds=weights.active / (tp * gpu.hbm_bandwidth_bytes_per_second),
        gpu_price_per_hour_usd=gpu.price_per_hour_usd,
        gpu_cost_per_hour=round(gpu.price_per_hour_usd * tp, 4),
        notes=notes,
    )


def _optional_positive(flag: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UserInputError(f"{flag}: value {value!r} is invalid; expected a positive integer")
    return value


def check_gpu_count(gpus: int) -> int:
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise UserInputError(f"--gpus: value {gpus!r} is invalid; expected a positive integer")
    if gpus > MAX_GPUS_PER_NODE:
        raise UserInputError(
            f"--gpus: value {gpus} exceeds {MAX_GPUS_PER_NODE}; tensor parallelism is planned within one node"
        )
    return gpus


def plan(
    model: str | Path | dict[str, Any] | ModelArchitecture,
    gpu: str | GPUSpec,
    *,
    gpus: int | None = None,
    quantization: str | None = None,
    max_model_len: int | None = None,
    gpu_memory_utilization: float = 0.9,
    kv_cache_dtype: str = "auto",
    dtype: str = "auto",
    gpu_price_per_hour_usd: float | None = None,
    max_num_batched_tokens: int | None = None,
    max_num_seqs: int | None = None,
    enforce_eager: bool = False,
) -> Plan:
    """Plan serving `model` with vLLM on `gpu`.

    Without `gpus` it picks the smallest valid tensor-parallel size (1, 2, 4, 8) that fits;
    when none fits, the plan at the largest valid size comes back with `fits=False` and a
    reason carrying the numbers. With `gpus` it plans exactly that many. Bad input (unknown
    model or GPU, impossible quantisation, an invalid GPU count, a context longer than the
    model's) raises UserInputError (ContextTooLongError, UnknownModelError) naming the value.
    `max_num_batched_tokens` and `max_num_seqs` are vLLM's flags of the same name (they size
    the profiling pass); by default vLLM's serving defaults for this GPU. `enforce_eager`
    (vLLM's --enforce-eager) drops the CUDA-graph term from the budget.
    """
    architecture = resolve_model(model)
    spec = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    if gpu_price_per_hour_usd is not None:
        spec = spec.with_price(gpu_price_per_hour_usd)
    utilization = _check_positive_fraction(gpu_memory_utilization)
    precision = resolve_precision(architecture, spec, quantization, dtype)
    kv_bytes = _kv_dtype_bytes(kv_cache_dtype, precision, spec)
    model_max = architecture.max_position_embeddings
    if max_model_len is not None:
        if isinstance(max_model_len, bool) or not isinstance(max_model_len, int) or max_model_len < 1:
            raise UserInputError(
                f"--max-model-len: value {max_model_len!r} is invalid; expected a positive integer"
            )
        if max_model_len > model_max:
            raise ContextTooLongError(
                f"--max-model-len: value {max_model_len} exceeds the maximum context of {architecture.name}, "
                f"{model_max} tokens"
            )
    length = max_model_len or model_max
    standard = budget.engine_defaults(spec)
    defaults = budget.EngineDefaults(
        max_num_batched_tokens=_optional_positive("--max-num-batched-tokens", max_num_batched_tokens)
        or standard.max_num_batched_tokens,
        max_num_seqs=_optional_positive("--max-num-seqs", max_num_seqs) or standard.max_num_seqs,
    )
    notes: tuple[str, ...] = ()
    if (
        precision.method is not None
        and precision.method not in ONLINE_METHODS
        and not (architecture.checkpoint_quantization)
    ):
        notes = (f"{precision.method} needs a checkpoint quantised offline with the same architecture",)

    def evaluate(tp: int) -> Plan:
        return _evaluate(
            architecture,
            spec,
            precision,
            tp,
            length,
            utilization,
            kv_cache_dtype,
            kv_bytes,
            notes,
            defaults,
            enforce_eager,
        )

    if gpus is not None:
        tp = check_gpu_count(gpus)
        problem = tensor_parallel_problem(architecture, precision, tp)
        if problem is not None:
            raise UserInputError(f"--gpus: value {tp} is not a valid tensor-parallel size: {problem}")
        return evaluate(tp)
    candidates = [
        tp
        for tp in AUTO_TENSOR_PARALLEL_SIZES
        if tensor_parallel_problem(architecture, precision, tp) is None
    ]
    if not candidates:
        raise UserInputError(
            f"--model: {architecture.name} has no valid tensor-parallel size among "
            f"{', '.join(map(str, AUTO_TENSOR_PARALLEL_SIZES))}: "
            f"{tensor_parallel_problem(architecture, precision, 1)}"
        )
    last: Plan | None = None
    for tp in candidates:
        last = evaluate(tp)
        if last.fits:
            return last
    assert last is not None
    return last.model_copy(
        update={"reason": f"does not fit on up to {last.tensor_parallel_size} x {spec.name}: {last.reason}"}
    )

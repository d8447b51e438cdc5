"""Weight memory per quantisation method, and which methods a GPU and a checkpoint allow.

Bytes per weight of the quantised linear layers (attention and MLP/experts):
  fp32 4; bf16/fp16 2; fp8 1 (+ one scale per tensor, negligible); int8 1 + a 4-byte scale
  per output channel; AWQ/GPTQ b-bit with group size g: b/8 + (2-byte scale + b-bit zero
  point) / g, i.e. 0.5195 for 4 bit, g = 128; bitsandbytes nf4: 0.5 + a 4-byte absmax per
  64-weight block = 0.5625.
Embeddings and the LM head stay in the activation dtype for every method but plain
fp32/bf16/fp16 (that is how vLLM's fp8, AWQ, GPTQ and bitsandbytes loaders work); so do
norms, biases and MoE routers.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmscale.errors import UserInputError
from llmscale.planner.architecture import ModelArchitecture
from llmscale.planner.gpus import GPUSpec

DTYPE_BYTES: dict[str, int] = {"float32": 4, "bfloat16": 2, "float16": 2}

_DTYPE_SPELLINGS: dict[str, str] = {
    "fp32": "float32",
    "float32": "float32",
    "float": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
    "half": "float16",
}

# accepted spelling -> canonical method (None = unquantised, the dtype decides)
_METHOD_SPELLINGS: dict[str, str] = {
    "fp8": "fp8",
    "int8": "int8",
    "w8a8": "int8",
    "awq": "awq",
    "awq_marlin": "awq",
    "gptq": "gptq",
    "gptq_marlin": "gptq",
    "bitsandbytes": "bitsandbytes",
    "bnb": "bitsandbytes",
    "nf4": "bitsandbytes",
}
QUANTIZATION_CHOICES = ("fp32", "bf16", "fp16", "fp8", "int8", "awq", "gptq", "bitsandbytes")

# Minimum compute capability vLLM needs for each method (fp8 on Ampere runs weight-only Marlin).
_MIN_COMPUTE_CAPABILITY: dict[str, tuple[int, int]] = {
    "fp8": (8, 0),
    "int8": (7, 5),
    "awq": (7, 5),
    "gptq": (6, 0),
    "bitsandbytes": (7, 0),
}
DEFAULT_GROUP_SIZE = 128
BNB_BLOCK_SIZE = 64
# Checkpoint formats that decide the method themselves (compressed-tensors can be fp8 or int8).
_CHECKPOINT_METHODS: dict[str, str] = {**_METHOD_SPELLINGS, "compressed-tensors": "int8", "fbgemm_fp8": "fp8"}
# Methods vLLM can apply while loading an unquantised checkpoint; the others need a
# checkpoint that was quantised offline (an -AWQ/-GPTQ repository of the same architecture).
ONLINE_METHODS = frozenset({"fp8", "bitsandbytes"})


@dataclass(frozen=True)
class WeightPrecision:
    """How the weights are stored on the GPU."""

    method: str | None  # None = unquantised
    dtype: str  # activation dtype ("bfloat16", "float16", "float32")
    bits: int | None = None
    group_size: int | None = None

    @property
    def label(self) -> str:
        if self.method is None:
            return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}[self.dtype]
        if self.method in ("awq", "gptq"):
            return f"{self.method}-{self.bits or 4}bit"
        if self.method == "bitsandbytes":
            return "bnb-nf4"
        return self.method

    def linear_bytes_per_weight(self, in_features: int) -> float:
        if self.method is None:
            return float(DTYPE_BYTES[self.dtype])
        if self.method == "fp8":
            return 1.0
        if self.method == "int8":
            return 1.0 + 4.0 / in_features
        if self.method in ("awq", "gptq"):
            bits = self.bits or 4
            group = self.group_size if self.group_size and self.group_size > 0 else in_features
            return bits / 8 + (2 + bits / 8) / group
        if self.method == "bitsandbytes":
            return 0.5 + 4.0 / BNB_BLOCK_SIZE
        raise AssertionError(self.method)


# vLLM refuses float16 for these model types (config/model.py, "Numerical instability").
FLOAT16_UNSUPPORTED_MODEL_TYPES = frozenset({"gemma2", "gemma3", "gemma3_text", "plamo2", "glm4"})


def canonical_dtype(value: str) -> str:
    dtype = _DTYPE_SPELLINGS.get(value.strip().lower())
    if dtype is None:
        raise UserInputError(
            f"--dtype: value {value!r} is not supported; expected auto, bfloat16, float16 or float32"
        )
    return dtype


def resolve_auto_dtype(model: ModelArchitecture, gpu: GPUSpec) -> str:
    """vLLM's `--dtype auto`: the checkpoint's dtype, except float32 serves in 16 bit.

    float32 checkpoints serve in float16, as the llmscale contract states and vLLM did up to
    0.9 (newer vLLM picks the platform's first dtype, bfloat16 on Ampere and later: the same
    two bytes per weight, so every size is unchanged). Gemma 2/3 never run in float16 (vLLM
    refuses it: numerical instability), so they take bfloat16, or float32 where the GPU lacks
    bfloat16. GPUs without bfloat16 (compute capability < 8.0, e.g. T4) fall back to float16.
    """
    dtype = _DTYPE_SPELLINGS.get(model.torch_dtype.lower(), "bfloat16")
    fp16_unsafe = model.model_type in FLOAT16_UNSUPPORTED_MODEL_TYPES
    if dtype == "float32":
        dtype = "bfloat16" if fp16_unsafe else "float16"
    if dtype == "bfloat16" and not gpu.supports_bfloat16:
        dtype = "float32" if fp16_unsafe else "float16"
    return dtype


def resolve_precision(
    model: ModelArchitecture, gpu: GPUSpec, quantization: str | None, dtype: str = "auto"
) -> WeightPrecision:
    """Combine --quantization, --dtype, the checkpoint's own quantisation and the GPU's abilities."""
    act_dtype = resolve_auto_dtype(model, gpu) if dtype.strip().lower() == "auto" else canonical_dtype(dtype)
    checkpoint_method = (
        _CHECKPOINT_METHODS.get(model.checkpoint_quantization) if model.checkpoint_quantization else None
    )
    if model.checkpoint_quantization and checkpoint_method is None:
        raise UserInputError(
            f"model {model.name}: checkpoint quantization {model.checkpoint_quantization!r} "
            "is not supported; "
            f"expected one of {', '.join(QUANTIZATION_CHOICES[3:])}"
        )
    method: str | None = checkpoint_method
    if quantization is not None and quantization.strip().lower() not in ("", "none", "auto"):
        requested = quantization.strip().lower()
        if requested in _DTYPE_SPELLINGS:
            if checkpoint_method is not None:
                raise UserInputError(
                    f"--quantization: value {quantization!r} is impossible: {model.name} is a "
                    f"{checkpoint_method} checkpoint"
                )
            act_dtype = _DTYPE_SPELLINGS[requested]
            method = None
        elif requested in _METHOD_SPELLINGS:
            wanted = _METHOD_SPELLINGS[requested]
            if checkpoint_method is not None and wanted != checkpoint_method:
                raise UserInputError(
                    f"--quantization: value {quantization!r} is impossible: {model.name} is a "
                    f"{checkpoint_method} checkpoint"
                )
            method = wanted
        else:
            raise UserInputError(
                f"--quantization: value {quantization!r} is not supported; expected one of "
                f"{', '.join(QUANTIZATION_CHOICES)}"
            )
    if act_dtype == "float16" and model.model_type in FLOAT16_UNSUPPORTED_MODEL_TYPES:
        raise UserInputError(
            f"--quantization/--dtype: float16 is impossible for {model.name}: vLLM refuses float16 for "
            f"{model.model_type} models (numerical instability); use bf16 or fp32"
        )
    if act_dtype == "bfloat16" and not gpu.supports_bfloat16:
        raise UserInputError(
            f"--quantization/--dtype: bfloat16 is impossible on {gpu.name} (compute capability "
            f"{gpu.compute_capability[0]}.{gpu.compute_capability[1]} < 8.0); use fp16"
        )
    if method is not None:
        minimum = _MIN_COMPUTE_CAPABILITY[method]
        if gpu.compute_capability < minimum:
            raise UserInputError(
                f"--quantization: value {method!r} is impossible on {gpu.name} (compute capability "
                f"{gpu.compute_capability[0]}.{gpu.compute_capability[1]}, "
                f"vLLM needs >= {minimum[0]}.{minimum[1]})"
            )
        if method in ("fp8", "int8", "bitsandbytes") and act_dtype == "float32":
            act_dtype = "float16"
    bits = model.checkpoint_quantization_bits if method in ("awq", "gptq") else None
    if method in ("awq", "gptq"):
        bits = bits or 4
    group = None
    if method in ("awq", "gptq"):
        group = model.checkpoint_quantization_group_size or DEFAULT_GROUP_SIZE
    return WeightPrecision(method=method, dtype=act_dtype, bits=bits, group_size=group)


@dataclass(frozen=True)
class WeightBytes:
    total: float  # the whole model
    active: float  # what one decoded token reads (MoE: routed experts only)
    kv_projection: float  # k/v projections: replicated when TP exceeds the KV heads


def weight_bytes(model: ModelArchitecture, precision: WeightPrecision) -> WeightBytes:
    """Bytes of the weights as loaded on the GPU(s), summed over all tensor-parallel ranks' shards."""
    act_bytes = DTYPE_BYTES[precision.dtype]
    linear_rate = precision.linear_bytes_per_weight(model.hidden_size)
    other = (model.embedding_parameters() + model.small_parameters()) * act_bytes

    def linear_bytes(active_only: bool) -> float:
        kept = model.unquantized_linear_parameters(active_only=active_only) if precision.method else 0
        return (model.linear_parameters(active_only=active_only) - kept) * linear_rate + kept * act_bytes

    kv_per_layer = model.kv_projection_parameters_per_layer()
    kept_kv_layers = model.unquantized_attention_layers if precision.method else 0
    kv = kv_per_layer * (
        (model.num_hidden_layers - kept_kv_layers) * linear_rate + kept_kv_layers * act_bytes
    )
    return WeightBytes(total=linear_bytes(False) + other, active=linear_bytes(True) + other, kv_projection=kv)

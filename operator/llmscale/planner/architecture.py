"""Model architectures: the few numbers of a Hugging Face config.json that size a deployment.

`ModelArchitecture.from_hf_config` reads a config.json dict (dense, GQA/MQA, MoE, explicit
`head_dim`, sliding-window layers, a pre-quantised checkpoint's `quantization_config`, and
multimodal configs whose language model sits under `text_config`). Parameter counts are
computed layer by layer, the way the checkpoint stores them, so they can be checked against
the sizes model cards publish.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict

from llmscale.errors import UserInputError

# Architectures whose MLP is up -> act -> down (two matrices) instead of gated (three).
_UNGATED_MLP_MODEL_TYPES = frozenset(
    {"gpt2", "gpt_bigcode", "phi", "falcon", "gpt_neox", "opt", "starcoder2"}
)
# Gemma 2/3 norm before and after both attention and MLP (four norms per layer).
_FOUR_NORM_MODEL_TYPES = frozenset({"gemma2", "gemma3", "gemma3_text"})
# Layer patterns of interleaved sliding-window attention, for configs without `layer_types`:
# Gemma 2 alternates local/global (even layers local); Gemma 3 has five local per global.
_SLIDING_EVERY_OTHER = frozenset({"gemma2", "cohere2"})
_SLIDING_FIVE_OF_SIX = frozenset({"gemma3", "gemma3_text"})
# Module names in `modules_to_not_convert` that keep a whole layer's attention or MLP unquantised.
_ATTENTION_MODULE = re.compile(r"layers\.(\d+)\.self_attn$")
_MLP_MODULE = re.compile(r"layers\.(\d+)\.(?:mlp|block_sparse_moe)$")
# Model types whose every layer uses the window when `sliding_window` is set (Mistral v0.1).
_SLIDING_ALL_LAYERS = frozenset({"mistral", "mixtral", "qwen2", "qwen2_moe", "starcoder2"})


class ModelArchitecture(BaseModel):
    """What the planner needs to know about a model (a reduced Hugging Face config)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    model_type: str = "llama"
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    torch_dtype: str = "bfloat16"
    attention_bias: bool = False  # q/k/v projections carry a bias (Qwen2)
    gated_mlp: bool = True
    norms_per_layer: int = 2
    # Mixture of experts (0 experts = dense).
    num_experts: int = 0
    num_experts_per_token: int = 0
    moe_intermediate_size: int | None = None  # per expert; defaults to intermediate_size
    shared_expert_intermediate_size: int = 0  # Qwen2-MoE style always-on expert
    # Sliding-window attention: how many layers only attend to the last `sliding_window` tokens.
    sliding_window: int | None = None
    sliding_window_layers: int = 0
    # A pre-quantised checkpoint (config.json `quantization_config`).
    checkpoint_quantization: str | None = None
    checkpoint_quantization_bits: int | None = None
    checkpoint_quantization_group_size: int | None = None
    # Layers the checkpoint left unquantised (`modules_to_not_convert` / `ignore`): Meta's
    # Llama-3.1-405B-FP8 keeps every attention block and the first and last MLP in bf16.
    unquantized_attention_layers: int = 0
    unquantized_mlp_layers: int = 0

    # ---- derived sizes -------------------------------------------------------------------

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def q_width(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.num_key_value_heads * self.head_dim

    def attention_linear_parameters_per_layer(self) -> int:
        # q and o are (hidden x heads*head_dim); k and v are (hidden x kv_heads*head_dim)
        return 2 * self.hidden_size * self.q_width + 2 * self.hidden_size * self.kv_width

    def kv_projection_parameters_per_layer(self) -> int:
        return 2 * self.hidden_size * self.kv_width

    def mlp_linear_parameters_per_layer(self, *, active_only: bool = False) -> int:
        matrices = 3 if self.gated_mlp else 2
        if not self.is_moe:
            return matrices * self.hidden_size * self.intermediate_size
        expert_size = self.moe_intermediate_size or self.intermediate_size
        experts = self.num_experts_per_token if active_only else self.num_experts
        shared = 3 * self.hidden_size * self.shared_expert_intermediate_size
        return experts * 3 * self.hidden_size * expert_size + shared

    def unquantized_linear_parameters(self, *, active_only: bool = False) -> int:
        """Linear parameters a pre-quantised checkpoint kept in 16 bit."""
        return self.unquantized_attention_layers * self.attention_linear_parameters_per_layer() + (
            self.unquantized_mlp_layers * self.mlp_linear_parameters_per_layer(active_only=active_only)
        )

    def linear_parameters(self, *, active_only: bool = False) -> int:
        """Parameters of the quantisable linear layers (attention and MLP/experts) of all layers."""
        per_layer = self.attention_linear_parameters_per_layer() + self.mlp_linear_parameters_per_layer(
            active_only=active_only
        )
        return per_layer * self.num_hidden_layers

    def embedding_parameters(self) -> int:
        """Input embedding plus the LM head (unless tied): the layers most methods keep in 16 bit."""
        embeddings = self.vocab_size * self.hidden_size
        return embeddings if self.tie_word_embeddings else 2 * embeddings

    def small_parameters(self) -> int:
        """Norms, biases and MoE routers: always kept in the activation dtype."""
        per_layer = self.norms_per_layer * self.hidden_size
        if self.attention_bias:
            per_layer += self.q_width + 2 * self.kv_width
        if self.is_moe:
            per_layer += self.hidden_size * self.num_experts
            if self.shared_expert_intermediate_size:
                per_layer += self.hidden_size  # the shared expert's gate
        return per_layer * self.num_hidden_layers + self.hidden_size  # + final norm

    def parameter_count(self) -> int:
        return self.linear_parameters() + self.embedding_parameters() + self.small_parameters()

    def active_parameter_count(self) -> int:
        """Parameters one token reads (MoE: only the routed experts); equals the total for dense models."""
        return (
            self.linear_parameters(active_only=True) + self.embedding_parameters() + self.small_parameters()
        )

    @property
    def full_attention_layers(self) -> int:
        return self.num_hidden_layers - self.sliding_window_layers

    # ---- parsing -------------------------------------------------------------------------

    @classmethod
    def from_hf_config(
        cls, config: dict[str, Any], *, name: str | None = None, source: str = "config.json"
    ) -> ModelArchitecture:
        """Build from a Hugging Face config.json dict; `source` names it in error messages."""
        return _parse_hf_config(config, name=name, source=source)


def _first(config: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if config.get(key) is not None:
            return config[key]
    return None


def _positive_int(config: dict[str, Any], source: str, *keys: str, required: bool = True) -> int | None:
    value = _first(config, *keys)
    if value is None:
        if required:
            raise UserInputError(f"{source}: missing field {keys[0]!r}; expected a positive integer")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserInputError(f"{source}: field {keys[0]!r} has value {value!r}; expected a positive integer")
    return value


def _count_sliding_layers(config: dict[str, Any], model_type: str, layers: int, window: int | None) -> int:
    if window is None:
        return 0
    layer_types = config.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        return sum(1 for kind in layer_types if kind == "sliding_attention")
    if model_type in _SLIDING_EVERY_OTHER:
        return (layers + 1) // 2
    if model_type in _SLIDING_FIVE_OF_SIX:
        return layers - layers // 6
    if model_type in _SLIDING_ALL_LAYERS:
        return layers
    return 0


def _scaled_context(config: dict[str, Any], max_len: int) -> int:
    """vLLM's derived max_model_len (config/model.py): RoPE scaling (YaRN, linear, dynamic) stretches it.

    Llama 3.1's "llama3" and Phi-3's "su"/"longrope" already state the stretched length in
    max_position_embeddings, so vLLM (and we) leave those alone.
    """
    rope = config.get("rope_scaling") or config.get("rope_parameters")
    if not isinstance(rope, dict) or str(config.get("model_type", "")).startswith("gemma3"):
        return max_len  # Gemma 3 states its scaled 128k already (vLLM skips it too)
    kind = str(rope.get("rope_type") or rope.get("type") or "")
    factor = rope.get("factor")
    if kind in ("", "default", "llama3", "su", "longrope", "mrope") or not isinstance(factor, int | float):
        return max_len
    if factor <= 1:
        return max_len
    original = rope.get("original_max_position_embeddings")
    if kind == "yarn" and isinstance(original, int) and original > 0:
        max_len = original
    return int(max_len * factor)


def _parse_hf_config(config: dict[str, Any], *, name: str | None, source: str) -> ModelArchitecture:
    if not isinstance(config, dict):
        raise UserInputError(f"{source}: expected a JSON object (a Hugging Face config.json)")
    text_config = config.get("text_config")
    if isinstance(text_config, dict):
        # Multimodal checkpoints keep the language model's numbers in text_config.
        merged = {k: v for k, v in config.items() if k != "text_config"}
        merged.update(text_config)
        config = merged
    if config.get("kv_lora_rank") is not None:
        raise UserInputError(
            f"{source}: multi-head latent attention (kv_lora_rank, DeepSeek-V2/V3) "
            "is not supported by the planner"
        )
    model_type = str(config.get("model_type") or "llama")
    hidden = _positive_int(config, source, "hidden_size", "n_embd", "d_model")
    layers = _positive_int(config, source, "num_hidden_layers", "n_layer", "num_layers")
    heads = _positive_int(config, source, "num_attention_heads", "n_head", "num_heads")
    assert hidden is not None and layers is not None and heads is not None
    kv_heads = _positive_int(config, source, "num_key_value_heads", "num_kv_heads", required=False)
    if kv_heads is None:
        kv_heads = 1 if config.get("multi_query") else heads
    head_dim = _positive_int(config, source, "head_dim", required=False)
    if head_dim is None:
        if hidden % heads:
            raise UserInputError(
                f"{source}: hidden_size {hidden} is not divisible by num_attention_heads {heads}; "
                "set head_dim"
            )
        head_dim = hidden // heads
    if heads % kv_heads:
        raise UserInputError(
            f"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
        )
    intermediate = _positive_int(config, source, "intermediate_size", "n_inner", "ffn_dim", required=False)
    if intermediate is None:
        intermediate = 4 * hidden
    vocab = _positive_int(config, source, "vocab_size")
    max_len = _positive_int(
        config, source, "max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"
    )
    assert vocab is not None and max_len is not None
    max_len = _scaled_context(config, max_len)
    experts = _positive_int(
        config, source, "num_local_experts", "num_experts", "n_routed_experts", required=False
    )
    top_k = _positive_int(config, source, "num_experts_per_tok", "moe_topk", required=False)
    if experts is not None and experts > 1 and top_k is None:
        raise UserInputError(f"{source}: MoE config has {experts} experts but no 'num_experts_per_tok'")
    moe_intermediate = _positive_int(config, source, "moe_intermediate_size", required=False)
    shared_intermediate = _positive_int(config, source, "shared_expert_intermediate_size", required=False)
    window = _positive_int(config, source, "sliding_window", required=False)
    if config.get("use_sliding_window") is False or (window is not None and window >= max_len):
        window = None  # Qwen2 ships a window it does not use; a window >= context changes nothing
    quant = config.get("quantization_config")
    quant_method: str | None = None
    quant_bits: int | None = None
    quant_group: int | None = None
    unquantized_attention = unquantized_mlp = 0
    if isinstance(quant, dict):
        quant_method = str(quant.get("quant_method") or "").lower() or None
        if quant_method == "bitsandbytes" and quant.get("load_in_8bit"):
            quant_method = "int8"
        bits = quant.get("bits", quant.get("w_bit"))
        quant_bits = bits if isinstance(bits, int) and not isinstance(bits, bool) else None
        group = quant.get("group_size", quant.get("q_group_size"))
        quant_group = group if isinstance(group, int) and not isinstance(group, bool) else None
        unconverted = quant.get("modules_to_not_convert") or quant.get("ignore") or []
        if isinstance(unconverted, list):
            names = [name for name in unconverted if isinstance(name, str)]
            unquantized_attention = len({m.group(1) for n in names if (m := _ATTENTION_MODULE.search(n))})
            unquantized_mlp = len({m.group(1) for n in names if (m := _MLP_MODULE.search(n))})
    torch_dtype = str(config.get("torch_dtype") or config.get("dtype") or "bfloat16")
    is_moe = experts is not None and experts > 1
    return ModelArchitecture(
        name=name or str(config.get("_name_or_path") or source),
        model_type=model_type,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        vocab_size=vocab,
        max_position_embeddings=max_len,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        torch_dtype=torch_dtype.removeprefix("torch."),
        attention_bias=bool(config.get("attention_bias", False) or model_type in ("qwen2", "qwen2_moe")),
        gated_mlp=model_type not in _UNGATED_MLP_MODEL_TYPES,
        norms_per_layer=4 if model_type in _FOUR_NORM_MODEL_TYPES else 2,
        num_experts=experts if is_moe and experts is not None else 0,
        num_experts_per_token=top_k if is_moe and top_k is not None else 0,
        moe_intermediate_size=moe_intermediate,
        shared_expert_intermediate_size=shared_intermediate or 0,
        sliding_window=window,
        sliding_window_layers=_count_sliding_layers(config, model_type, layers, window),
        checkpoint_quantization=quant_method,
        checkpoint_quantization_bits=quant_bits,
        checkpoint_quantization_group_size=quant_group,
        unquantized_attention_layers=min(unquantized_attention, layers),
        unquantized_mlp_layers=min(unquantized_mlp, layers),
    )

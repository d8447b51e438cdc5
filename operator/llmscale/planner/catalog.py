"""Well-known models, by Hugging Face id and short alias, and `resolve_model`.

Each entry holds the fields of the model's published config.json that the planner reads
(copied as numbers, not code). `resolve_model` also takes a path to any config.json, or
the parsed dict, so users can plan models the catalog does not know.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmscale.errors import UserInputError
from llmscale.planner.architecture import ModelArchitecture


class UnknownModelError(UserInputError):
    """A model name that is neither in the catalog nor a readable config.json."""


def _llama(
    hidden: int, layers: int, heads: int, kv: int, inter: int, max_len: int, **extra: Any
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "intermediate_size": inter,
        "vocab_size": 128256,
        "max_position_embeddings": max_len,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    config.update(extra)
    return config


def _qwen2(
    hidden: int, layers: int, heads: int, kv: int, inter: int, max_len: int, **extra: Any
) -> dict[str, Any]:
    config = _llama(hidden, layers, heads, kv, inter, max_len, model_type="qwen2", vocab_size=152064)
    config.update(extra)
    return config


_LLAMA3_8B = _llama(4096, 32, 32, 8, 14336, 8192)
_LLAMA3_70B = _llama(8192, 80, 64, 8, 28672, 8192)
_LLAMA31_8B = {**_LLAMA3_8B, "max_position_embeddings": 131072}
_LLAMA31_70B = {**_LLAMA3_70B, "max_position_embeddings": 131072}
_LLAMA31_405B = _llama(16384, 126, 128, 8, 53248, 131072)
_QWEN25_7B = _qwen2(3584, 28, 28, 4, 18944, 32768)
_QWEN25_14B = _qwen2(5120, 48, 40, 8, 13824, 32768)
_QWEN25_32B = _qwen2(5120, 64, 40, 8, 27648, 32768)
_QWEN25_72B = _qwen2(8192, 80, 64, 8, 29568, 32768)
_MISTRAL_7B_V03 = _llama(4096, 32, 32, 8, 14336, 32768, model_type="mistral", vocab_size=32768)
_MISTRAL_7B_V02 = {**_MISTRAL_7B_V03, "vocab_size": 32000}
_MISTRAL_7B_V01 = {**_MISTRAL_7B_V02, "sliding_window": 4096}
_MIXTRAL_8X7B = _llama(
    4096,
    32,
    32,
    8,
    14336,
    32768,
    model_type="mixtral",
    vocab_size=32000,
    num_local_experts=8,
    num_experts_per_tok=2,
)
_MIXTRAL_8X22B = _llama(
    6144,
    56,
    48,
    8,
    16384,
    65536,
    model_type="mixtral",
    vocab_size=32768,
    num_local_experts=8,
    num_experts_per_tok=2,
)
_GEMMA2_9B = _llama(
    3584, 42, 16, 8, 14336, 8192, model_type="gemma2", head_dim=256, vocab_size=256000,
    tie_word_embeddings=True, torch_dtype="float32", sliding_window=4096,
)  # fmt: skip
_GEMMA2_27B = _llama(
    4608, 46, 32, 16, 36864, 8192, model_type="gemma2", head_dim=128, vocab_size=256000,
    tie_word_embeddings=True, torch_dtype="bfloat16", sliding_window=4096,
)  # fmt: skip
_PHI3_MINI = _llama(3072, 32, 32, 32, 8192, 4096, model_type="phi3", vocab_size=32064)
_PHI3_MEDIUM = _llama(5120, 40, 40, 10, 17920, 4096, model_type="phi3", vocab_size=32064)
_R1_QWEN_1_5B = _qwen2(1536, 28, 12, 2, 8960, 131072, vocab_size=151936)

# Meta's FP8 checkpoint quantises the MLPs of layers 1-124 only (fbgemm_fp8, dynamic activation scales).
_LLAMA31_405B_FP8_QUANT = {
    "quant_method": "fbgemm_fp8",
    "modules_to_not_convert": [
        *(f"model.layers.{layer}.self_attn" for layer in range(126)),
        "model.layers.0.mlp",
        "model.layers.125.mlp",
        "lm_head",
    ],
}

# Hugging Face id -> config fields. Aliases below map short names onto these ids.
KNOWN_MODELS: dict[str, dict[str, Any]] = {
    "meta-llama/Meta-Llama-3-8B": _LLAMA3_8B,
    "meta-llama/Meta-Llama-3-8B-Instruct": _LLAMA3_8B,
    "meta-llama/Meta-Llama-3-70B": _LLAMA3_70B,
    "meta-llama/Meta-Llama-3-70B-Instruct": _LLAMA3_70B,
    "meta-llama/Llama-3.1-8B": _LLAMA31_8B,
    "meta-llama/Llama-3.1-8B-Instruct": _LLAMA31_8B,
    "meta-llama/Llama-3.1-70B": _LLAMA31_70B,
    "meta-llama/Llama-3.1-70B-Instruct": _LLAMA31_70B,
    "meta-llama/Llama-3.3-70B-Instruct": _LLAMA31_70B,
    "meta-llama/Llama-3.1-405B": _LLAMA31_405B,
    "meta-llama/Llama-3.1-405B-Instruct": _LLAMA31_405B,
    "meta-llama/Llama-3.1-405B-Instruct-FP8": {
        **_LLAMA31_405B,
        "quantization_config": _LLAMA31_405B_FP8_QUANT,
    },
    "mistralai/Mistral-7B-v0.1": _MISTRAL_7B_V01,
    "mistralai/Mistral-7B-Instruct-v0.1": _MISTRAL_7B_V01,
    "mistralai/Mistral-7B-Instruct-v0.2": _MISTRAL_7B_V02,
    "mistralai/Mistral-7B-v0.3": _MISTRAL_7B_V03,
    "mistralai/Mistral-7B-Instruct-v0.3": _MISTRAL_7B_V03,
    "mistralai/Mixtral-8x7B-v0.1": _MIXTRAL_8X7B,
    "mistralai/Mixtral-8x7B-Instruct-v0.1": _MIXTRAL_8X7B,
    "mistralai/Mixtral-8x22B-v0.1": _MIXTRAL_8X22B,
    "mistralai/Mixtral-8x22B-Instruct-v0.1": _MIXTRAL_8X22B,
    "Qwen/Qwen2.5-7B-Instruct": _QWEN25_7B,
    "Qwen/Qwen2.5-14B-Instruct": _QWEN25_14B,
    "Qwen/Qwen2.5-32B-Instruct": _QWEN25_32B,
    "Qwen/Qwen2.5-72B-Instruct": _QWEN25_72B,
    "Qwen/Qwen2.5-7B-Instruct-AWQ": {
        **_QWEN25_7B,
        "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128},
    },
    "google/gemma-2-9b-it": _GEMMA2_9B,
    "google/gemma-2-27b-it": _GEMMA2_27B,
    "microsoft/Phi-3-mini-4k-instruct": _PHI3_MINI,
    "microsoft/Phi-3-mini-128k-instruct": {**_PHI3_MINI, "max_position_embeddings": 131072},
    "microsoft/Phi-3-medium-4k-instruct": _PHI3_MEDIUM,
    "microsoft/Phi-3-medium-128k-instruct": {**_PHI3_MEDIUM, "max_position_embeddings": 131072},
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B": _R1_QWEN_1_5B,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B": {**_QWEN25_7B, "max_position_embeddings": 131072},
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": _LLAMA31_8B,
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B": {**_QWEN25_14B, "max_position_embeddings": 131072},
    "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": {**_QWEN25_32B, "max_position_embeddings": 131072},
    "deepseek-ai/DeepSeek-R1-Distill-Llama-70B": _LLAMA31_70B,
}

MODEL_ALIASES: dict[str, str] = {
    "llama-3-8b": "meta-llama/Meta-Llama-3-8B-Instruct",
    "llama-3-70b": "meta-llama/Meta-Llama-3-70B-Instruct",
    "llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct",
    "llama-3.1-70b": "meta-llama/Llama-3.1-70B-Instruct",
    "llama-3.3-70b": "meta-llama/Llama-3.3-70B-Instruct",
    "llama-3.1-405b": "meta-llama/Llama-3.1-405B-Instruct",
    "llama-3.1-405b-fp8": "meta-llama/Llama-3.1-405B-Instruct-FP8",
    "mistral-7b": "mistralai/Mistral-7B-Instruct-v0.3",
    "mixtral-8x7b": "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "mixtral-8x22b": "mistralai/Mixtral-8x22B-Instruct-v0.1",
    "qwen2.5-7b": "Qwen/Qwen2.5-7B-Instruct",
    "qwen2.5-7b-awq": "Qwen/Qwen2.5-7B-Instruct-AWQ",
    "qwen2.5-14b": "Qwen/Qwen2.5-14B-Instruct",
    "qwen2.5-32b": "Qwen/Qwen2.5-32B-Instruct",
    "qwen2.5-72b": "Qwen/Qwen2.5-72B-Instruct",
    "gemma-2-9b": "google/gemma-2-9b-it",
    "gemma-2-27b": "google/gemma-2-27b-it",
    "phi-3-mini": "microsoft/Phi-3-mini-4k-instruct",
    "phi-3-mini-128k": "microsoft/Phi-3-mini-128k-instruct",
    "phi-3-medium": "microsoft/Phi-3-medium-4k-instruct",
    "phi-3-medium-128k": "microsoft/Phi-3-medium-128k-instruct",
    "deepseek-r1-distill-qwen-1.5b": "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
    "deepseek-r1-distill-qwen-7b": "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
    "deepseek-r1-distill-llama-8b": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B",
    "deepseek-r1-distill-qwen-14b": "deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
    "deepseek-r1-distill-qwen-32b": "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B",
    "deepseek-r1-distill-llama-70b": "deepseek-ai/DeepSeek-R1-Distill-Llama-70B",
}

_BY_LOWER_NAME: dict[str, str] = {
    # The id without its organisation ("Meta-Llama-3-8B-Instruct") is what people paste from a URL.
    **{hf_id.split("/", 1)[1].lower(): hf_id for hf_id in KNOWN_MODELS},
    **{hf_id.lower(): hf_id for hf_id in KNOWN_MODELS},
    # Aliases win over an id's bare name ("llama-3.1-70b" means the Instruct model).
    **{alias.lower(): hf_id for alias, hf_id in MODEL_ALIASES.items()},
}


def known_model_names() -> list[str]:
    """Short aliases first (what people type), then Hugging Face ids."""
    return [*MODEL_ALIASES, *KNOWN_MODELS]


def lookup_known_model(name: str) -> str | None:
    """The Hugging Face id of a catalog model, matched case-insensitively; None when unknown."""
    return _BY_LOWER_NAME.get(name.strip().lower())


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a config.json (or a directory holding one); one-line UserInputError when unreadable."""
    if path.is_dir():
        path = path / "config.json"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"--model: cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(
            f"{path}:{exc.lineno}: malformed JSON ({exc.msg}); expected a Hugging Face config.json"
        ) from exc
    if not isinstance(data, dict):
        raise UserInputError(f"{path}: expected a JSON object (a Hugging Face config.json)")
    return data


def resolve_model(model: str | Path | dict[str, Any] | ModelArchitecture) -> ModelArchitecture:
    """A catalog name (HF id or alias, any case), a path to a config.json, or a config dict."""
    if isinstance(model, ModelArchitecture):
        return model
    if isinstance(model, dict):
        return ModelArchitecture.from_hf_config(model, source="model config")
    if isinstance(model, Path):
        return ModelArchitecture.from_hf_config(load_config_file(model), name=str(model), source=str(model))
    if not isinstance(model, str) or not model.strip():
        raise UnknownModelError(
            f"--model: value {model!r} is empty; expected a model name or a config.json path"
        )
    hf_id = lookup_known_model(model)
    if hf_id is not None:
        return ModelArchitecture.from_hf_config(KNOWN_MODELS[hf_id], name=hf_id, source=hf_id)
    path = Path(model).expanduser()
    if model.endswith(".json") or path.exists():
        return ModelArchitecture.from_hf_config(load_config_file(path), name=str(path), source=str(path))
    raise UnknownModelError(
        f"--model: value {model!r} is not a known model or a config.json path; known names include "
        f"{', '.join(list(MODEL_ALIASES)[:8])}, ... (see `llmscale plan --list-models`)"
    )

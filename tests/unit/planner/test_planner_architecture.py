"""Architectures: parameter counts and KV bytes per token against figures computed by hand here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmscale.errors import UserInputError
from llmscale.planner import UnknownModelError, plan, resolve_model
from llmscale.planner.architecture import ModelArchitecture

LLAMA2_7B_CONFIG = {  # meta-llama/Llama-2-7b-hf config.json: dense, multi-head (no GQA), fp16
    "model_type": "llama",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "intermediate_size": 11008,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "torch_dtype": "float16",
}


def _llama_style_parameters(
    hidden: int, layers: int, heads: int, kv: int, head_dim: int, inter: int, vocab: int, tied: bool
) -> int:
    attention = hidden * heads * head_dim * 2 + hidden * kv * head_dim * 2
    mlp = 3 * hidden * inter
    norms = 2 * hidden
    embeddings = vocab * hidden * (1 if tied else 2)
    return layers * (attention + mlp + norms) + embeddings + hidden


@pytest.mark.parametrize(
    ("name", "expected", "published_billions"),
    [
        # (by-hand count, size on the model card)
        ("llama-3-8b", _llama_style_parameters(4096, 32, 32, 8, 128, 14336, 128256, False), 8.03),
        ("llama-3.1-70b", _llama_style_parameters(8192, 80, 64, 8, 128, 28672, 128256, False), 70.6),
        ("llama-3.1-405b", _llama_style_parameters(16384, 126, 128, 8, 128, 53248, 128256, False), 405.9),
        ("mistral-7b", _llama_style_parameters(4096, 32, 32, 8, 128, 14336, 32768, False), 7.25),
        # explicit head_dim 256 while hidden/heads = 224; tied embeddings; four norms per layer
        (
            "gemma-2-9b",
            _llama_style_parameters(3584, 42, 16, 8, 256, 14336, 256000, True) + 42 * 2 * 3584,
            9.24,
        ),
        ("phi-3-mini", _llama_style_parameters(3072, 32, 32, 32, 96, 8192, 32064, False), 3.82),
    ],
)
def test_dense_parameter_counts_match_hand_counts_and_model_cards(
    name: str, expected: int, published_billions: float
) -> None:
    model = resolve_model(name)
    assert model.parameter_count() == expected
    assert model.parameter_count() / 1e9 == pytest.approx(published_billions, rel=0.01)


def test_qwen2_counts_its_qkv_biases() -> None:
    model = resolve_model("Qwen/Qwen2.5-7B-Instruct")
    biases = 28 * (3584 + 2 * 4 * 128)
    expected = _llama_style_parameters(3584, 28, 28, 4, 128, 18944, 152064, False) + biases
    assert model.parameter_count() == expected
    assert model.parameter_count() / 1e9 == pytest.approx(7.62, rel=0.005)  # model card: 7.61B


def test_moe_counts_all_experts_but_a_token_reads_two() -> None:
    model = resolve_model("mixtral-8x7b")
    attention = 4096 * 4096 * 2 + 4096 * 1024 * 2
    expert = 3 * 4096 * 14336
    router = 4096 * 8
    fixed = 32 * (attention + router + 2 * 4096) + 2 * 32000 * 4096 + 4096
    assert model.parameter_count() == fixed + 32 * 8 * expert
    assert model.active_parameter_count() == fixed + 32 * 2 * expert
    # Mistral's announcement: 46.7B total, 12.9B active per token
    assert model.parameter_count() / 1e9 == pytest.approx(46.7, rel=0.005)
    assert model.active_parameter_count() / 1e9 == pytest.approx(12.9, rel=0.005)


@pytest.mark.parametrize(
    ("model", "expected_bytes"),
    [
        (LLAMA2_7B_CONFIG, 32 * 2 * 32 * 128 * 2),  # dense MHA: 512 KiB per token
        ("llama-3-8b", 32 * 2 * 8 * 128 * 2),  # GQA, 8 KV heads: 128 KiB
        ("mixtral-8x7b", 32 * 2 * 8 * 128 * 2),  # MoE: experts do not add KV
        ("gemma-2-9b", 42 * 2 * 8 * 256 * 2),  # explicit head_dim 256 (not 3584 / 16 = 224)
        ("llama-3.1-70b", 80 * 2 * 8 * 128 * 2),  # 320 KiB (Hugging Face's Llama 3.1 blog: 0.313 GB per 1k)
    ],
)
def test_kv_bytes_per_token(model: str | dict[str, object], expected_bytes: int) -> None:
    result = plan(model, "H100-80GB", gpus=8 if model == "llama-3.1-70b" else 1, max_model_len=4096)
    assert result.kv_bytes_per_token == expected_bytes


def test_fp8_kv_cache_halves_bytes_per_token() -> None:
    auto = plan("llama-3-8b", "L4", max_model_len=4096)
    fp8 = plan("llama-3-8b", "L4", max_model_len=4096, kv_cache_dtype="fp8")
    assert fp8.kv_bytes_per_token * 2 == auto.kv_bytes_per_token
    assert fp8.kv_cache_tokens > 1.9 * auto.kv_cache_tokens


def test_kv_heads_are_replicated_when_tensor_parallel_exceeds_them() -> None:
    # Qwen2.5-1.5B-style distill: 2 KV heads; on 4 GPUs each rank keeps one (4 copies in total)
    result = plan("deepseek-r1-distill-qwen-1.5b", "L4", gpus=4, max_model_len=4096)
    assert result.kv_bytes_per_token == 28 * 2 * 4 * 128 * 2


def test_sliding_window_layers() -> None:
    gemma = resolve_model("gemma-2-9b")
    assert (gemma.sliding_window, gemma.sliding_window_layers) == (4096, 21)  # every other layer
    qwen = ModelArchitecture.from_hf_config(
        {**LLAMA2_7B_CONFIG, "model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": False}
    )
    assert qwen.sliding_window is None and qwen.sliding_window_layers == 0
    listed = ModelArchitecture.from_hf_config(
        {
            **LLAMA2_7B_CONFIG,
            "num_hidden_layers": 4,
            "sliding_window": 512,
            "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"],
        }
    )
    assert listed.sliding_window_layers == 3


def test_sliding_window_layers_hold_only_the_window() -> None:
    # Gemma 2 at 8192 tokens: 21 full layers hold 8192 tokens, 21 sliding layers 4096 (+1 block),
    # so a sequence costs ~3/4 of what all-layers-full would and more sequences fit.
    result = plan("gemma-2-9b", "H100-80GB", max_model_len=8192)
    per_layer_token = 2 * 8 * 256 * 2
    sequence_bytes = 21 * 8192 * per_layer_token + 21 * (4096 + 16) * per_layer_token
    kv_budget_bytes = result.kv_cache_gib * 2**30
    assert result.max_concurrent_sequences == pytest.approx(kv_budget_bytes / sequence_bytes, abs=1)
    assert result.max_concurrent_sequences > result.kv_cache_tokens // 8192


def test_multimodal_text_config_is_read() -> None:
    config = {"model_type": "llava", "text_config": LLAMA2_7B_CONFIG, "vision_config": {"hidden_size": 1024}}
    assert ModelArchitecture.from_hf_config(config).hidden_size == 4096


def test_catalog_names_are_case_insensitive_and_take_aliases() -> None:
    assert resolve_model("LLAMA-3-8B").name == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert resolve_model("meta-llama/meta-llama-3-8b-instruct").name == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert resolve_model("Meta-Llama-3-8B-Instruct").num_key_value_heads == 8


def test_config_json_path_and_directory(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA2_7B_CONFIG))
    assert resolve_model(str(path)).num_key_value_heads == 32  # absent -> as many as attention heads
    assert resolve_model(str(tmp_path)).hidden_size == 4096


def test_malformed_config_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{\n  "hidden_size": 4096,\n  oops\n}')
    with pytest.raises(UserInputError, match=r"config\.json:3: malformed JSON"):
        resolve_model(str(path))


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({k: v for k, v in LLAMA2_7B_CONFIG.items() if k != "hidden_size"}, "missing field 'hidden_size'"),
        ({**LLAMA2_7B_CONFIG, "num_hidden_layers": -1}, "'num_hidden_layers' has value -1"),
        ({**LLAMA2_7B_CONFIG, "num_key_value_heads": 5}, "not a multiple of num_key_value_heads 5"),
        ({**LLAMA2_7B_CONFIG, "kv_lora_rank": 512}, "multi-head latent attention"),
        ({**LLAMA2_7B_CONFIG, "num_local_experts": 8}, "no 'num_experts_per_tok'"),
    ],
)
def test_bad_configs_are_one_clear_error(config: dict[str, object], message: str) -> None:
    with pytest.raises(UserInputError, match=message):
        ModelArchitecture.from_hf_config(config)


def test_unknown_model_is_a_user_input_error() -> None:
    with pytest.raises(UnknownModelError, match="'no-such-model' is not a known model"):
        resolve_model("no-such-model")
    assert issubclass(UnknownModelError, UserInputError)


def test_modules_to_not_convert_keep_layers_in_16_bit() -> None:
    config = {
        **LLAMA2_7B_CONFIG,
        "quantization_config": {
            "quant_method": "fbgemm_fp8",
            "modules_to_not_convert": [
                "model.layers.0.self_attn",
                "model.layers.1.self_attn",
                "model.layers.0.mlp",
                "lm_head",
                "re:.*gate$",
            ],
        },
    }
    model = ModelArchitecture.from_hf_config(config)
    assert (model.unquantized_attention_layers, model.unquantized_mlp_layers) == (2, 1)
    kept = 2 * 4 * 4096 * 4096 + 3 * 4096 * 11008
    assert model.unquantized_linear_parameters() == kept
    quantised = plan(config, "H100-80GB", gpus=1)
    everything = plan({**config, "quantization_config": {"quant_method": "fp8"}}, "H100-80GB", gpus=1)
    assert quantised.weights_gib * 2**30 == pytest.approx(everything.weights_gib * 2**30 + kept, abs=2**20)


def test_rope_scaling_stretches_the_context_like_vllm() -> None:
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    # Qwen2.5's documented YaRN override: 32768 x 4 = 131072 tokens
    qwen = ModelArchitecture.from_hf_config(
        {**LLAMA2_7B_CONFIG, "max_position_embeddings": 32768, "rope_scaling": yarn}
    )
    assert qwen.max_position_embeddings == 131072
    linear = {**LLAMA2_7B_CONFIG, "rope_scaling": {"type": "linear", "factor": 2.0}}
    assert ModelArchitecture.from_hf_config(linear).max_position_embeddings == 8192
    # Llama 3.1 states the stretched length already
    llama3 = {
        **LLAMA2_7B_CONFIG,
        "max_position_embeddings": 131072,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0},
    }
    assert ModelArchitecture.from_hf_config(llama3).max_position_embeddings == 131072

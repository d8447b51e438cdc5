"""`llmscale plan` through the real dispatcher: exit codes, JSON keys, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmscale.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["plan", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_keys_and_exit_zero_when_it_fits(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = _run(
        capsys, "--model", "llama-3-8b", "--gpu", "L4", "--max-model-len", "8192", "--json"
    )
    assert status == 0, err
    data = json.loads(out)
    for key in (
        "fits",
        "tensor_parallel_size",
        "weights_gib",
        "kv_bytes_per_token",
        "kv_cache_tokens",
        "max_concurrent_sequences",
        "reason",
        "itl_floor_seconds",
        "gpu_cost_per_hour",
        "max_model_len",
    ):
        assert key in data
    assert data["fits"] is True and data["reason"] is None
    assert data["kv_bytes_per_token"] == 131072
    assert data["kv_cache_tokens"] % 16 == 0


def test_exit_one_when_it_does_not_fit(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "--model", "llama-3.1-70b", "--gpu", "L4", "--gpus", "1", "--json")
    assert status == 1
    data = json.loads(out)
    assert data["fits"] is False
    assert "GiB" in data["reason"]


def test_human_table(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "--model", "mixtral-8x7b", "--gpu", "H100-80GB", "--max-model-len", "8192")
    assert status == 0
    assert "FITS" in out and "tensor parallel size" in out and "active per token" in out


def test_compare_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(
        capsys, "--model", "qwen2.5-7b", "--gpu", "L4,T4", "--compare", "--max-model-len", "8192"
    )
    assert status == 0
    assert "awq-4bit" in out and "n/a T4 fp8" in out
    status, out, _ = _run(
        capsys, "--model", "qwen2.5-7b", "--gpu", "L4,T4", "--compare", "--max-model-len", "8192", "--json"
    )
    rows = json.loads(out)["plans"]
    assert len(rows) == 12
    assert json.loads(out)["models"] == ["Qwen/Qwen2.5-7B-Instruct"]
    assert any(row.get("error") for row in rows)
    assert {row["gpu"] for row in rows} == {"L4", "T4"}


def test_list_gpus_and_models(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(capsys, "--list-gpus", "--json")
    assert status == 0
    assert {gpu["name"] for gpu in json.loads(out)["gpus"]} >= {"H100-80GB", "L4", "T4"}
    status, out, _ = _run(capsys, "--list-models")
    assert status == 0 and "llama-3-8b" in out and "deepseek-ai/DeepSeek-R1-Distill-Llama-8B" in out


def test_config_json_model(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "model_type": "mistral",
                "hidden_size": 4096,
                "num_hidden_layers": 32,
                "num_attention_heads": 32,
                "num_key_value_heads": 8,
                "intermediate_size": 14336,
                "vocab_size": 32768,
                "max_position_embeddings": 32768,
                "torch_dtype": "bfloat16",
            }
        )
    )
    status, out, _ = _run(capsys, "--model", str(path), "--gpu", "A100-80GB", "--json")
    assert status == 0
    assert json.loads(out)["parameter_count"] == 7_248_023_552


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "llama-3-8b", "--gpu", "B300"], "--gpu: value 'B300' is not a known GPU"),
        (["--model", "nope", "--gpu", "L4"], "--model: value 'nope' is not a known model"),
        (["--model", "llama-3-8b", "--gpu", "T4", "--quantization", "fp8"], "'fp8' is impossible on T4"),
        (["--model", "llama-3-8b", "--gpu", "L4", "--gpus", "0"], "--gpus: value 0"),
        (["--model", "llama-3-8b", "--gpu", "L4", "--gpus", "3"], "not divisible by 3"),
        (["--model", "llama-3-8b", "--gpu", "L4", "--max-model-len", "9000"], "exceeds the maximum context"),
        (["--model", "llama-3-8b"], "--gpu: missing"),
        (["--model", "llama-3-8b", "--gpu", "L4", "--compare", "--gpus", "0"], "--gpus: value 0"),
        (["--model", "llama-3-8b", "--gpu", "L4", "--compare", "--max-model-len", "9000"], "9000 exceeds"),
    ],
)
def test_bad_input_is_one_line_exit_two(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = _run(capsys, *argv)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert message in err


def test_malformed_config_json_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 4096,,}')
    status, _, err = _run(capsys, "--model", str(path), "--gpu", "L4")
    assert status == 2
    assert err.startswith("llmscale plan: error: ") and f"{path}:1: malformed JSON" in err

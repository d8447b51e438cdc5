"""The real-vLLM pod: how the operator's rendered command line maps onto CPU vLLM (pure)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmscale.errors import UserInputError
from llmscale_tools.localcluster import pod_processes as pp
from llmscale_tools.localcluster import vllm_env
from llmscale_tools.localcluster.vllm_pod import KV_CACHE_BYTES, serve_argv, serve_env

PYTHON = Path("/env/bin/python")
MODEL = Path("/env/models/tiny-llama")
# what resources/deployment.py renders for a Llama-3.1-8B on 2 x L4 with extraArgs
RENDERED = [
    "vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct",
    "--host", "0.0.0.0", "--port", "8000",
    "--served-model-name", "llama",
    "--tensor-parallel-size", "2",
    "--max-model-len", "8192",
    "--gpu-memory-utilization", "0.9",
    "--quantization", "awq",
    "--dtype=auto",
    "--enable-prefix-caching",
    "--max-num-seqs", "64",
]  # fmt: skip


def test_rendered_command_becomes_cpu_vllm_on_the_pod_ip() -> None:
    argv = serve_argv(RENDERED, "127.1.0.7", PYTHON, MODEL)
    assert argv[:3] == [str(PYTHON), "-m", "vllm.entrypoints.openai.api_server"]
    flags = dict(zip(argv[3::2], argv[4::2], strict=False))
    assert flags["--model"] == str(MODEL)
    assert flags["--served-model-name"] == "llama"
    assert flags["--host"] == "127.1.0.7" and flags["--port"] == "8000"
    # capped to the tiny model's bounds
    assert flags["--max-model-len"] == "1024" and flags["--max-num-seqs"] == "16"
    assert "--enforce-eager" in argv
    assert argv[argv.index("--kv-cache-memory-bytes") + 1] == str(64 * 1024 * 1024) == str(KV_CACHE_BYTES)
    # GPU-only flags are gone, the rest passes through
    for dropped in ("--tensor-parallel-size", "--gpu-memory-utilization", "--quantization", "--dtype=auto"):
        assert dropped not in argv
    assert "--enable-prefix-caching" in argv
    assert "0.0.0.0" not in argv


def test_without_served_name_the_rendered_model_name_is_served() -> None:
    argv = serve_argv(["vllm", "serve", "org/m", "--max-model-len", "512"], "127.1.0.8", PYTHON, MODEL)
    assert argv[argv.index("--served-model-name") + 1] == "org/m"
    assert argv[argv.index("--max-model-len") + 1] == "512"


def test_bad_command_lines_name_the_problem() -> None:
    with pytest.raises(UserInputError, match="no model"):
        serve_argv(["vllm", "serve"], "127.1.0.8", PYTHON, MODEL)
    with pytest.raises(UserInputError, match="--port has no value"):
        serve_argv(["vllm", "serve", "m", "--port"], "127.1.0.8", PYTHON, MODEL)
    with pytest.raises(UserInputError, match="--max-model-len"):
        serve_argv(["vllm", "serve", "m", "--max-model-len", "lots"], "127.1.0.8", PYTHON, MODEL)


def test_environment_selects_cpu_stays_offline_and_on_loopback() -> None:
    env = serve_env({"PATH": "/bin"}, "127.1.0.7")
    assert env["VLLM_TARGET_DEVICE"] == "cpu"
    assert env["VLLM_HOST_IP"] == "127.1.0.7"
    assert env["HF_HUB_OFFLINE"] == "1" and env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["PATH"] == "/bin"


def test_runner_rules_choose_vllm_per_pod_or_per_session() -> None:
    default = pp.rule_commands("py")
    assert default["emulator"][-2:] == ["llmscale_tools.emulator", "--pod-env"]
    assert default["vllm"] == ["py", "-m", "llmscale_tools.localcluster.vllm_pod"]
    assert pp.rule_commands("py", engine="vllm")["emulator"] == default["vllm"]
    with pytest.raises(ValueError, match="LLMSCALE_POD_ENGINE"):
        pp.rule_commands("py", engine="gpu")


def test_missing_environment_is_one_clear_line(tmp_path: Path) -> None:
    env = {
        "LLMSCALE_POD_IP": "127.1.0.7",
        "LLMSCALE_POD_ARGS": '["vllm", "serve", "m"]',
        vllm_env.ENV_VARIABLE: str(tmp_path / "absent"),
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "llmscale_tools.localcluster.vllm_pod"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "make vllm" in lines[0] and str(tmp_path / "absent") in lines[0]

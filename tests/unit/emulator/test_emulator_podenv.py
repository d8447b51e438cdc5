"""--pod-env: the emulator serves what the pod's vLLM command line and node labels say."""

from __future__ import annotations

import json

import pytest

from llmscale.errors import UserInputError
from llmscale_tools.emulator.podenv import config_from_pod_env, parse_vllm_command

POD_ARGS = [
    "vllm",
    "serve",
    "meta-llama/Llama-3.1-8B-Instruct",
    "--host",
    "0.0.0.0",
    "--port",
    "8000",
    "--served-model-name",
    "chat",
    "--tensor-parallel-size",
    "2",
    "--max-model-len",
    "8k",
    "--gpu-memory-utilization",
    "0.9",
    "--enable-prefix-caching",
    "--max-num-seqs",
    "64",
]


def env(**overrides: str) -> dict[str, str]:
    base = {
        "LLMSCALE_POD_IP": "127.0.1.7",
        "LLMSCALE_POD_ARGS": json.dumps(POD_ARGS),
        "LLMSCALE_NODE_LABELS": json.dumps({"llmscale.dev/gpu-product": "A100-80GB"}),
        "LLMSCALE_POD_ANNOTATIONS": json.dumps({"prometheus.io/scrape": "true"}),
    }
    base.update(overrides)
    return base


def test_reads_vllm_command_line_node_gpu_and_pod_ip() -> None:
    config = config_from_pod_env(env())
    assert config.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert config.served_model_names == ("chat",)
    assert config.primary_name == "chat"
    assert config.tensor_parallel_size == 2
    assert config.max_model_len == 8000
    assert config.gpu == "A100-80GB"
    assert (config.host, config.port) == ("127.0.1.7", 8000)
    assert config.metrics_names == "current"
    assert config.max_num_seqs == 64


def test_legacy_metrics_and_speedup_annotations() -> None:
    annotations = {"llmscale.dev/emulator-metrics": "legacy", "llmscale.dev/emulator-speedup": "10"}
    config = config_from_pod_env(env(LLMSCALE_POD_ANNOTATIONS=json.dumps(annotations)))
    assert config.metrics_names == "legacy"
    assert config.speedup == 10.0


def test_older_entrypoint_with_model_flag() -> None:
    argv = ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "mistral-7b", "--port=9000"]
    parsed = parse_vllm_command(argv)
    assert parsed["model"] == "mistral-7b"
    assert parsed["port"] == 9000
    assert parsed["served_model_names"] == ()


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"LLMSCALE_POD_IP": ""}, "LLMSCALE_POD_IP"),
        ({"LLMSCALE_POD_ARGS": "[vllm"}, "LLMSCALE_POD_ARGS"),
        ({"LLMSCALE_POD_ARGS": json.dumps({"a": 1})}, "LLMSCALE_POD_ARGS"),
        ({"LLMSCALE_POD_ARGS": json.dumps(["vllm", "serve", "m", "--port", "http"])}, "LLMSCALE_POD_ARGS"),
        ({"LLMSCALE_NODE_LABELS": "[]"}, "LLMSCALE_NODE_LABELS"),
        (
            {"LLMSCALE_POD_ANNOTATIONS": json.dumps({"llmscale.dev/emulator-metrics": "v0"})},
            "llmscale.dev/emulator-metrics",
        ),
    ],
)
def test_bad_environment_names_the_variable(overrides: dict[str, str], names: str) -> None:
    with pytest.raises(UserInputError, match=names.replace(".", r"\.")):
        config_from_pod_env(env(**overrides))


def test_a_multi_node_leaders_wrapped_command_line_still_names_the_model() -> None:
    # resources/leaderworkerset.py: `bash -c SCRIPT vllm serve MODEL ...` (the script starts Ray first)
    model = "meta-llama/Llama-3.1-405B-Instruct"
    argv = ["/bin/bash", "-c", 'ray-start && exec "$0" "$@"', "vllm", "serve", model,
            "--port", "8000", "--tensor-parallel-size", "8", "--pipeline-parallel-size", "2"]  # fmt: skip
    parsed = parse_vllm_command(argv)
    assert parsed["model"] == "meta-llama/Llama-3.1-405B-Instruct"
    assert (parsed["port"], parsed["tensor_parallel_size"]) == (8000, 8)

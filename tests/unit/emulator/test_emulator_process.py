"""`--pod-env` in a real process, as the local pod runner starts it (on a 127.0.0.0/8 address)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

POD_IP = "127.0.0.1"


def test_pod_env_serves_the_pods_vllm_command_line() -> None:
    repo = Path(__file__).resolve().parents[3]
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        LLMSCALE_POD_IP=POD_IP,
        LLMSCALE_POD_NAME="chat-0",
        LLMSCALE_POD_ARGS=json.dumps(
            [
                "vllm",
                "serve",
                "meta-llama/Llama-3.1-8B-Instruct",
                "--host",
                "0.0.0.0",
                "--port",
                "0",
                "--served-model-name",
                "chat",
                "--max-model-len",
                "4096",
            ]
        ),
        LLMSCALE_NODE_LABELS=json.dumps({"llmscale.dev/gpu-product": "A100-80GB"}),
        LLMSCALE_POD_ANNOTATIONS=json.dumps({"llmscale.dev/emulator-metrics": "legacy"}),
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "llmscale_tools.emulator", "--pod-env"],
        cwd=repo,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert f" at http://{POD_IP}:" in banner and "on A100-80GB" in banner, banner
        url = banner.rsplit(" at ", 1)[1].strip()

        async def main() -> tuple[Any, Any, str]:
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{url}/v1/models") as response:
                    models = await response.json()
                body = {"model": "chat", "prompt": "hello", "max_tokens": 2}
                async with session.post(f"{url}/v1/completions", json=body) as response:
                    completion = await response.json()
                async with session.get(f"{url}/metrics") as response:
                    metrics = await response.text()
            return models, completion, metrics

        models, completion, metrics = asyncio.run(main())
        assert [m["id"] for m in models["data"]] == ["chat"]
        assert models["data"][0]["max_model_len"] == 4096
        assert completion["usage"]["completion_tokens"] == 2
        families = {f.name: f for f in text_string_to_metric_families(metrics)}
        assert "vllm:gpu_cache_usage_perc" in families
        assert families["vllm:num_requests_running"].samples[0].labels == {"model_name": "chat"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_pod_env_without_the_runner_environment_is_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMSCALE_")}
    done = subprocess.run(
        [sys.executable, "-m", "llmscale_tools.emulator", "--pod-env"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "llmscale emulate: error: LLMSCALE_POD_IP: not set; --pod-env needs the pod runner's environment"
    ]

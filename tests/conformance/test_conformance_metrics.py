"""/metrics: the emulator exports what real vLLM exports, with the same types, labels and buckets.

Both servers get the same small load first (so every histogram has observations), then
their pages are parsed with prometheus_client's parser and compared family by family. The
families the emulator does not export are listed here and in docs/emulator.md with the
reason; any other difference fails. The legacy generation (what pre-v1 vLLM fleets export)
cannot be compared with a running server here, so it is checked against the names, types and
labels vLLM 0.6 documented (DESIGN.md section 4).
"""

from __future__ import annotations

import asyncio
import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conformance_servers import SERVED, Server
from prometheus_client.parser import text_string_to_metric_families

from llmscale_tools.emulator.app import start_emulator
from llmscale_tools.emulator.config import EmulatorConfig

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1200)]
# vLLM's model-FLOPs-utilisation estimates: the emulator does not estimate FLOPs or bytes moved
ONLY_IN_VLLM = {
    "vllm:estimated_flops_per_gpu",
    "vllm:estimated_read_bytes_per_gpu",
    "vllm:estimated_write_bytes_per_gpu",
}
# info metrics carry the engine configuration as labels; the emulator has a subset of it
INFO_FAMILIES = {"vllm:cache_config_info"}


def load(server: Server) -> None:
    body = (
        b'{"model": "%s", "prompt": "Hello metrics", "max_tokens": 4, "ignore_eos": true}' % SERVED.encode()
    )
    for _ in range(3):
        request = urllib.request.Request(
            f"{server.url}/v1/completions", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            assert response.status == 200


def families(text: str) -> dict[str, dict[str, Any]]:
    """name -> {type, labels (without le), buckets (histograms)} for vllm:* families."""
    out: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("vllm:") or family.name.endswith("_created"):
            continue
        labels: set[str] = set()
        buckets: set[str] = set()
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
            if sample.name.endswith("_bucket"):
                buckets.add(sample.labels["le"])
        out[family.name] = {"type": family.type, "labels": labels, "buckets": sorted(buckets, key=float)}
    return out


def scrape(server: Server) -> dict[str, dict[str, Any]]:
    with urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as response:
        return families(response.read().decode())


def test_emulator_metric_families_match_real_vllm(emulator_server: Server, vllm_server: Server) -> None:
    load(emulator_server)
    load(vllm_server)
    emulated, real = scrape(emulator_server), scrape(vllm_server)
    assert set(emulated) == set(real) - ONLY_IN_VLLM, {
        "missing in the emulator": sorted(set(real) - ONLY_IN_VLLM - set(emulated)),
        "only in the emulator": sorted(set(emulated) - set(real)),
    }
    for name, family in emulated.items():
        assert family["type"] == real[name]["type"], name
        if name in INFO_FAMILIES:
            assert family["labels"] <= real[name]["labels"], name
        else:
            assert family["labels"] == real[name]["labels"], name
        assert family["buckets"] == real[name]["buckets"], name


# vLLM 0.6 (v0 engine) names and types, as its documentation listed them; label model_name only
LEGACY = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:gpu_cache_usage_perc": "gauge",
    "vllm:num_preemptions": "counter",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:request_success": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:time_per_output_token_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
    "vllm:request_prefill_time_seconds": "histogram",
    "vllm:request_decode_time_seconds": "histogram",
    "vllm:request_prompt_tokens": "histogram",
    "vllm:request_generation_tokens": "histogram",
    "vllm:avg_prompt_throughput_toks_per_s": "gauge",
    "vllm:avg_generation_throughput_toks_per_s": "gauge",
}


def test_emulator_legacy_generation_has_the_v0_names_types_and_labels() -> None:
    async def main() -> str:
        config = EmulatorConfig(
            port=0, served_model_names=(SERVED,), metrics_names="legacy", max_model_len=1024
        )
        emu = await start_emulator(config)
        try:
            await asyncio.to_thread(load, Server("emulator", emu.url, 0.0, Path(os.devnull)))
            return await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"{emu.url}/metrics").read().decode()
            )
        finally:
            await emu.drain_and_stop(timeout_seconds=2.0)

    legacy = families(asyncio.run(main()))
    for name, kind in LEGACY.items():
        assert legacy[name]["type"] == kind, name
        expected = {"model_name", "finished_reason"} if name == "vllm:request_success" else {"model_name"}
        assert legacy[name]["labels"] == expected, name
    # the current generation's renamed families are absent in legacy mode
    assert "vllm:kv_cache_usage_perc" not in legacy and "vllm:inter_token_latency_seconds" not in legacy

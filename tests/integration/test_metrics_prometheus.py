"""The adapter's PromQL against a real Prometheus scraping real emulators and a real gateway.

No cluster: a local `prometheus` binary scrapes, on 127.0.0.1 with a 1 s interval, three
emulated vLLM replicas (current metric names, legacy metric names, and an idle one) with the
target labels `namespace`/`llmdeployment` the cluster's pod discovery would attach, plus the
gateway (honor_labels, as docs/gateway.md prescribes). Skipped when no prometheus binary exists.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from llmscale.gateway.app import build_app, start_site
from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.proxy import Gateway
from llmscale.gateway.routing import Endpoint
from llmscale.metrics.prometheus import PrometheusMetricsSource
from llmscale.metrics.types import DeploymentMetrics
from llmscale_tools.emulator.app import start_emulator
from llmscale_tools.emulator.config import EmulatorConfig
from llmscale_tools.fakes.gateway import FakeActivationSignaller, FakeEndpointSource

PROMETHEUS = shutil.which("prometheus") or (
    str(Path(__file__).resolve().parents[2] / ".localcluster" / "bin" / "prometheus")
    if (Path(__file__).resolve().parents[2] / ".localcluster" / "bin" / "prometheus").exists()
    else None
)

# `make` installs Prometheus before this tier (make system-deps) and sets
# LLMSCALE_REQUIRE_SYSTEM_DEPS=1: there a missing binary is a failure, not a skip. A bare
# `pytest` on a laptop without Prometheus still skips, and says why.
if PROMETHEUS is None and os.environ.get("LLMSCALE_REQUIRE_SYSTEM_DEPS") == "1":
    raise RuntimeError(
        "no prometheus binary on PATH, and LLMSCALE_REQUIRE_SYSTEM_DEPS=1: run `make system-deps`"
    )

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        PROMETHEUS is None, reason="no prometheus binary on PATH (`make system-deps` installs it)"
    ),
]

NS = "team"
MODEL = "llama-3.1-8b"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PORTS = {"new": free_port(), "old": free_port(), "idle": free_port(), "gateway": free_port()}


@pytest.fixture(scope="module")
def prometheus_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "vllm",
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{PORTS[name]}"],
                        "labels": {"namespace": NS, "llmdeployment": name},
                    }
                    for name in ("new", "old", "idle")
                ],
            },
            {
                # as a PodMonitor or pod discovery would scrape it: no honor_labels, and the target
                # has its own `namespace`, so the gateway's becomes `exported_namespace`
                "job_name": "llmscale-gateway",
                "honor_labels": False,
                "static_configs": [
                    {
                        "targets": [f"127.0.0.1:{PORTS['gateway']}"],
                        "labels": {"namespace": "llmscale-system", "pod": "llmscale-gateway-0"},
                    }
                ],
            },
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    assert PROMETHEUS is not None
    log_file = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed after the process
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        env={**os.environ, "HOME": str(workdir)},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prometheus did not start: {(workdir / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log_file.close()


async def wait_for_scrapes(prometheus_url: str, targets: int, timeout_seconds: float = 30.0) -> None:
    """Prometheus scrapes new static targets only after its discovery settles (~5 s): wait for it,
    or the first sample would already include the traffic and rate() would see none."""
    query = urllib.parse.urlencode({"query": "sum(up)"})
    deadline = time.monotonic() + timeout_seconds
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline:
            async with client.get(f"{prometheus_url}/api/v1/query?{query}") as resp:
                result = (await resp.json())["data"]["result"]
            if result and float(result[0]["value"][1]) >= targets:
                return
            await asyncio.sleep(0.5)
    raise AssertionError(f"prometheus did not scrape {targets} targets within {timeout_seconds}s")


async def poll_until(source: PrometheusMetricsSource, ready: Any, timeout_seconds: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout_seconds
    snapshot: dict[Any, DeploymentMetrics] = {}
    while time.monotonic() < deadline:
        snapshot = await source.fetch_current(time.time())
        if ready(snapshot):
            return snapshot
        await asyncio.sleep(1.0)
    raise AssertionError(f"signals never showed up; last snapshot: {snapshot}")


def test_real_prometheus_both_name_generations_gateway_series_and_history(prometheus_url: str) -> None:
    async def main() -> None:
        emulators = {
            name: await start_emulator(
                EmulatorConfig(
                    model=MODEL,
                    served_model_names=(name,),
                    gpu="L4",
                    port=PORTS[name],
                    metrics_names="legacy" if name == "old" else "current",
                    speedup=20.0,
                )
            )
            for name in ("new", "old", "idle")
        }
        source_k8s = FakeEndpointSource()
        for name, emulator in emulators.items():
            source_k8s.add_deployment(NS, name, MODEL, name)
            source_k8s.set_endpoints(NS, name, [Endpoint("127.0.0.1", emulator.port)])
        gateway = Gateway(GatewayConfig(port=0, auth="none"), source_k8s, FakeActivationSignaller())
        runner, _port = await start_site(build_app(gateway), "127.0.0.1", PORTS["gateway"])
        source = PrometheusMetricsSource(prometheus_url, timeout_seconds=3.0)
        try:
            await wait_for_scrapes(prometheus_url, targets=4)
            async with aiohttp.ClientSession() as client:

                async def one(model: str, stream: bool) -> None:
                    body = {"model": model, "prompt": "hello " * 50, "max_tokens": 16, "stream": stream}
                    async with client.post(
                        f"http://127.0.0.1:{PORTS['gateway']}/v1/completions", json=body
                    ) as r:
                        assert r.status == 200, await r.text()
                        await r.read()

                # several seconds of traffic so that rate() has samples on both sides
                for _round in range(8):
                    await asyncio.gather(*(one(m, i % 2 == 0) for m in ("new", "old") for i in range(4)))
                    await asyncio.sleep(0.5)

            def complete(snapshot: dict[Any, DeploymentMetrics]) -> bool:
                new, old = snapshot.get((NS, "new")), snapshot.get((NS, "old"))
                return (
                    new is not None
                    and old is not None
                    and all(
                        m.ttft_p95_seconds is not None
                        and m.itl_p95_seconds is not None
                        and (m.request_rate_rps or 0) > 0
                        and (m.gateway_arrivals_rps or 0) > 0
                        for m in (new, old)
                    )
                )

            snapshot = await poll_until(source, complete)
            new, old, idle = snapshot[(NS, "new")], snapshot[(NS, "old")], snapshot[(NS, "idle")]
            for metrics in (new, old):
                assert metrics.kv_cache_usage is not None and 0.0 <= metrics.kv_cache_usage <= 1.0
                assert (metrics.prompt_tokens_per_second or 0) > 0
                assert (metrics.generation_tokens_per_second or 0) > 0
                assert metrics.num_requests_waiting is not None and metrics.num_requests_running is not None
                assert metrics.gateway_queue_depth == 0.0
                assert 0 < (metrics.ttft_p95_seconds or 0) < 100
            # the legacy replica exports time_per_output_token and gpu_cache_usage only
            assert "itl_p95_seconds" not in old.missing and "kv_cache_usage" not in old.missing
            # the idle replica: histograms present but empty = no traffic, not missing data
            assert idle.ttft_p95_seconds is None and "ttft_p95_seconds" not in idle.missing
            assert idle.request_rate_rps == 0.0 and idle.gateway_arrivals_rps == 0.0
            assert idle.proves_idle
            assert not new.proves_idle

            # range queries evaluate at step-aligned instants, so on a busy machine the newest
            # samples may land a step later: poll, bounded, before judging
            history: dict[Any, Any] = {}
            for _attempt in range(20):
                now = time.time()
                history = await source.fetch_history(now - 120, now, 5)
                if (NS, "new") in history and any(history[(NS, "new")].demand_rps()):
                    break
                await asyncio.sleep(1.0)
            assert (NS, "new") in history, f"no history series for {NS}/new: {history}"
            demand = [v for v in history[(NS, "new")].demand_rps() if v]
            assert demand, history[(NS, "new")]
        finally:
            source.close()
            await runner.cleanup()
            for emulator in emulators.values():
                await emulator.drain_and_stop(2.0)

    asyncio.run(main())

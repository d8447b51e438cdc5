"""Reading the gateway's /metrics directly and overlaying it on another MetricsSource."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from llmscale.gateway.app import build_app, start_site
from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.proxy import Gateway
from llmscale.metrics.gateway_scrape import GatewayOverlaySource, GatewayScraper, parse_gateway_metrics
from llmscale_tools.fakes.gateway import FakeActivationSignaller, FakeEndpointSource
from llmscale_tools.fakes.metrics import FakeMetricsSource

pytestmark = pytest.mark.timeout(30)

KEY = ("team", "llama")


def test_parse_sums_series_and_skips_created_and_unlabelled() -> None:
    text = (
        "# TYPE llmscale_gateway_arrivals counter\n"
        'llmscale_gateway_arrivals_total{llmdeployment="llama",namespace="team"} 7.0\n'
        'llmscale_gateway_arrivals_created{llmdeployment="llama",namespace="team"} 1.7e9\n'
        "# TYPE llmscale_gateway_queue_depth gauge\n"
        'llmscale_gateway_queue_depth{llmdeployment="llama",namespace="team"} 2.0\n'
        'llmscale_gateway_queue_depth{llmdeployment="",namespace=""} 5.0\n'
    )
    assert parse_gateway_metrics(text) == {KEY: (2.0, 7.0)}


def test_overlay_reads_queue_depth_now_and_arrival_rate_between_reads() -> None:
    async def main() -> None:
        source = FakeEndpointSource()
        source.add_deployment(*KEY, "meta-llama/Llama-3.1-8B", "llama")
        gateway = Gateway(
            GatewayConfig(port=0, auth="none", hold_timeout_seconds=10), source, FakeActivationSignaller()
        )
        runner, port = await start_site(build_app(gateway), "127.0.0.1", 0)
        prometheus = FakeMetricsSource()
        prometheus.set(*KEY, request_rate_rps=0.0)  # engine side known, gateway side not scraped
        overlay = GatewayOverlaySource(prometheus, GatewayScraper([f"http://127.0.0.1:{port}"]))
        try:
            first = (await overlay.fetch_current(100.0))[KEY]
            assert first.gateway_queue_depth == 0.0 and "gateway_queue_depth" not in first.missing
            assert "gateway_arrivals_rps" in first.missing  # no rate before a second read
            async with aiohttp.ClientSession() as client:
                held = [
                    asyncio.create_task(
                        client.post(f"http://127.0.0.1:{port}/v1/completions", json={"model": "llama"})
                    )
                    for _ in range(4)
                ]
                while gateway.held(KEY) < 4:
                    await asyncio.sleep(0.01)
                second = (await overlay.fetch_current(102.0))[KEY]
                assert second.gateway_queue_depth == 4.0
                assert second.gateway_arrivals_rps == pytest.approx(2.0)  # 4 arrivals in 2 s
                assert second.request_rate_rps == 0.0  # the inner source's signals are kept
                for task in held:
                    task.cancel()
                await asyncio.gather(*held, return_exceptions=True)
        finally:
            await runner.cleanup()

    asyncio.run(main())


def test_an_unreadable_gateway_leaves_the_inner_snapshot_alone() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prometheus = FakeMetricsSource()
    prometheus.set(*KEY, gateway_queue_depth=3.0)
    overlay = GatewayOverlaySource(
        prometheus, GatewayScraper([f"http://127.0.0.1:{port}"], timeout_seconds=1)
    )
    snapshot = asyncio.run(overlay.fetch_current(1.0))
    assert snapshot[KEY].gateway_queue_depth == 3.0


def test_counter_reset_counts_from_zero() -> None:
    scraper = GatewayScraper([])
    scraper._previous[KEY] = (0.0, 100.0)

    async def read_with(text: str, now: float) -> float | None:
        async def fake_fetch(_session: object, _url: str) -> str:
            return text

        scraper.urls = ["http://gateway"]
        scraper._fetch = fake_fetch  # type: ignore[method-assign,assignment]
        return (await scraper.read(now))[KEY].arrivals_rps

    text = (
        "# TYPE llmscale_gateway_arrivals counter\n"
        'llmscale_gateway_arrivals_total{llmdeployment="llama",namespace="team"} 6.0\n'
    )
    # 100 -> 6 arrivals: the gateway restarted; 6 arrivals in 3 s
    assert asyncio.run(read_with(text, 3.0)) == pytest.approx(2.0)

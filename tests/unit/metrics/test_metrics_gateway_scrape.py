"""Reading the gateway's /metrics directly and overlaying it on another MetricsSource."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest

from llmscale.errors import UserInputError
from llmscale.gateway.app import build_app, start_site
from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.proxy import Gateway
from llmscale.metrics.gateway_scrape import GatewayOverlaySource, GatewayScraper, parse_gateway_metrics
from llmscale.scaling.counter_history import CounterHistory
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
                # 4 arrivals in the 2 s the history covers, over the whole 30 s rate window and
                # the whole 5 s decision interval: the history is younger than either
                assert second.gateway_arrivals_rps == pytest.approx(4 / 30)
                assert second.gateway_recent_arrivals_rps == pytest.approx(4 / 5)
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


def _scraper_reading(pods: dict[str, str], **windows: float) -> GatewayScraper:
    """A scraper whose targets are `pods` (URL -> exposition text), without the network."""
    scraper = GatewayScraper(["http://gateway:8080"], **windows)

    async def targets() -> list[str]:
        return sorted(pods)

    async def fetch(_session: object, url: str) -> str:
        return pods[url]

    scraper.targets = targets  # type: ignore[method-assign]
    scraper._fetch = fetch  # type: ignore[method-assign,assignment]
    return scraper


def _arrivals(count: float, held: float = 0.0) -> str:
    return (
        "# TYPE llmscale_gateway_arrivals counter\n"
        f'llmscale_gateway_arrivals_total{{llmdeployment="llama",namespace="team"}} {count}\n'
        "# TYPE llmscale_gateway_queue_depth gauge\n"
        f'llmscale_gateway_queue_depth{{llmdeployment="llama",namespace="team"}} {held}\n'
    )


def test_rates_are_per_pod_and_summed_a_restart_counts_from_zero() -> None:
    pods = {"http://10.0.0.1:8080": _arrivals(100.0, 1.0), "http://10.0.0.2:8080": _arrivals(40.0, 2.0)}
    scraper = _scraper_reading(pods, recent_window_seconds=3.0)
    first = asyncio.run(scraper.read(0.0))[KEY]
    assert (first.queue_depth, first.arrivals_total, first.arrivals_rps) == (3.0, 140.0, None)
    # pod 1: 100 -> 6 (it restarted: 6 arrivals since); pod 2: 40 -> 49 (9 arrivals); 15 in 3 s
    pods["http://10.0.0.1:8080"] = _arrivals(6.0)
    pods["http://10.0.0.2:8080"] = _arrivals(49.0)
    assert asyncio.run(scraper.read(3.0))[KEY].arrivals_rps == pytest.approx(5.0)
    # pod 2 leaves and pod 3 joins: pod 3 has no previous read (no rate yet); pod 1 adds 10 since
    # its read 2 s ago, the read closest to 3 s back (the other is 5 s back): 10 over the 3 s window
    del pods["http://10.0.0.2:8080"]
    pods["http://10.0.0.3:8080"] = _arrivals(500.0, 4.0)
    pods["http://10.0.0.1:8080"] = _arrivals(16.0)
    third = asyncio.run(scraper.read(5.0))[KEY]
    assert third.arrivals_rps == pytest.approx(10 / 3) and third.queue_depth == 4.0
    # over the 30 s rate window: pod 1's 16 arrivals since its first read, 5 s ago
    assert third.windowed_rps == pytest.approx(16 / 30)


def test_reads_a_fraction_of_a_second_apart_do_not_inflate_the_rate() -> None:
    """The operator's urgent tick (an activation) reads again 0.2 s after a regular tick: one
    arrival in those 0.2 s is one arrival in the last interval, not 5 requests per second."""
    pods = {"http://10.0.0.1:8080": _arrivals(0.0)}
    scraper = _scraper_reading(pods)  # the defaults: a 5 s decision interval, a 30 s rate window
    for now in (0.0, 5.0, 10.0):
        asyncio.run(scraper.read(now))
    pods["http://10.0.0.1:8080"] = _arrivals(1.0, 1.0)
    reading = asyncio.run(scraper.read(10.2))[KEY]
    # base for the interval: the read 5.2 s back (closest to 5 s; the others are 0.2 and 10.2 s)
    assert reading.arrivals_rps == pytest.approx(1 / 5.2)
    # base for the window: the oldest read, 10.2 s back, younger than the 30 s window
    assert reading.windowed_rps == pytest.approx(1 / 30)


def test_counter_history_keeps_one_reading_beyond_its_span_and_survives_restarts() -> None:
    history = CounterHistory(keep_seconds=10.0)
    assert history.rate(5.0) is None  # no reading
    for second in range(0, 61, 5):  # 12 arrivals per 5 s: 2.4 per second
        history.add(float(second), 12.0 * second / 5)
    assert history.rate(5.0) == pytest.approx(2.4)
    assert history.rate(10.0) == pytest.approx(2.4)
    assert history.rate(30.0) == pytest.approx(24 / 30)  # only 10 s (+ one reading) are kept: 50..60
    history.add(65.0, 3.0)  # restarted: 3 arrivals since 60 s
    assert history.rate(5.0) == pytest.approx(3 / 5)


def test_overlay_keeps_prometheus_windowed_rate_and_adds_the_recent_one() -> None:
    pods = {"http://10.0.0.1:8080": _arrivals(10.0, 1.0)}
    prometheus = FakeMetricsSource()
    prometheus.set(*KEY, gateway_arrivals_rps=1.5, gateway_queue_depth=0.0)
    overlay = GatewayOverlaySource(prometheus, _scraper_reading(pods))
    first = asyncio.run(overlay.fetch_current(0.0))[KEY]
    assert (first.gateway_arrivals_rps, first.gateway_recent_arrivals_rps, first.gateway_queue_depth) == (
        1.5,
        None,
        1.0,
    )
    pods["http://10.0.0.1:8080"] = _arrivals(60.0, 7.0)
    second = asyncio.run(overlay.fetch_current(5.0))[KEY]
    # 50 arrivals in 5 s read directly; Prometheus' 30 s window still says 1.5
    assert (second.gateway_arrivals_rps, second.gateway_recent_arrivals_rps, second.gateway_queue_depth) == (
        1.5,
        10.0,
        7.0,
    )


def test_a_name_resolves_to_every_address() -> None:
    scraper = GatewayScraper(["http://127.0.0.1:9000/", "http://[::1]:9001"])
    assert asyncio.run(scraper.targets()) == ["http://127.0.0.1:9000", "http://[::1]:9001"]


@pytest.mark.parametrize("url", ["gateway:8080", "ftp://gateway", "http://:8080"])
def test_a_bad_url_is_one_line_naming_the_flag(url: str) -> None:
    with pytest.raises(UserInputError, match=r"--gateway-metrics-url: .* is not an http\(s\) URL"):
        GatewayScraper([url])

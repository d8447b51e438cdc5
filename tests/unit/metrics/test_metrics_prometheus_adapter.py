"""The Prometheus adapter against a small fake Prometheus HTTP API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from llmscale.errors import MetricsUnavailableError
from llmscale.metrics.prometheus import PrometheusMetricsSource
from llmscale.metrics.promql import QueryWindows, current_queries
from llmscale.metrics.types import SIGNAL_NAMES

NOW = 1_700_000_000.0

Responder = Callable[[str], Any]


def vector(*series: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": m, "value": [NOW, v]} for m, v in series]},
    }


def dep(namespace: str, name: str, **extra: str) -> dict[str, str]:
    return {"namespace": namespace, "llmdeployment": name, **extra}


class FakePrometheus:
    """Serves /api/v1/query and /api/v1/query_range from a responder chosen by substring."""

    def __init__(self) -> None:
        self.responders: list[tuple[str, Responder]] = []
        self.requests: list[dict[str, str]] = []
        self.delay_seconds = 0.0
        self.status = 200

    def on(self, fragment: str, body: Any) -> None:
        self.responders.append((fragment, (lambda _q: body) if not callable(body) else body))

    async def handle(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        self.requests.append({"path": request.path, **params})
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        if self.status != 200:
            return web.Response(status=self.status, text="boom")
        query = params["query"]
        for fragment, responder in self.responders:
            if fragment in query:
                body = responder(query)
                if isinstance(body, str):
                    return web.Response(text=body, content_type="application/json")
                return web.json_response(body)
        kind = "matrix" if request.path.endswith("query_range") else "vector"
        return web.json_response({"status": "success", "data": {"resultType": kind, "result": []}})


@asynccontextmanager
async def serve(fake: FakePrometheus) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/api/v1/query", fake.handle)
    app.router.add_get("/api/v1/query_range", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_one_query_per_signal_for_all_deployments_at_an_explicit_time() -> None:
    fake = FakePrometheus()

    async def main() -> None:
        async with serve(fake) as url:
            source = PrometheusMetricsSource(url)
            try:
                assert await source.fetch_current(NOW) == {}
            finally:
                source.close()

    run(main())
    assert len(fake.requests) == len(SIGNAL_NAMES)
    assert {r["path"] for r in fake.requests} == {"/api/v1/query"}
    assert {float(r["time"]) for r in fake.requests} == {NOW}
    for request in fake.requests:
        assert "by (namespace, llmdeployment" in request["query"]


def test_queries_cover_both_generations_of_vllm_names() -> None:
    queries = current_queries(QueryWindows(rate_window_seconds=30))
    itl = queries["itl_p95_seconds"]
    assert "rate(vllm:inter_token_latency_seconds_bucket[30s]) or " in itl
    assert "rate(vllm:time_per_output_token_seconds_bucket[30s])" in itl
    # the `or` is per pod, inside the aggregation, so a half-upgraded deployment keeps all pods
    assert itl.index(" or ") > itl.index("sum by (namespace, llmdeployment, le)")
    assert "(vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc)" in queries["kv_cache_usage"]
    assert queries["ttft_p95_seconds"].startswith("histogram_quantile(0.95,")
    assert "vllm:request_success_total" in queries["request_rate_rps"]
    assert "llmscale_gateway_arrivals_total" in queries["gateway_arrivals_rps"]
    # the gateway's own deployment labels survive a scrape without honor_labels
    for signal in ("gateway_arrivals_rps", "gateway_queue_depth"):
        assert '"namespace", "$1", "exported_namespace", "(.+)"' in queries[signal]
        assert '"llmdeployment", "$1", "exported_llmdeployment", "(.+)"' in queries[signal]


def test_values_nan_inf_empty_and_multi_series_are_decided_explicitly() -> None:
    fake = FakePrometheus()
    a, b = dep("team-a", "llama"), dep("team-b", "qwen")
    fake.on("request_success_total", vector((a, "2.5"), (b, "0")))
    fake.on("num_requests_waiting", vector((a, "3"), (b, "0"), ({"namespace": "x"}, "99")))
    fake.on("num_requests_running", vector((a, "7"), (b, "0")))
    # two series for one deployment (e.g. a second scrape job): the larger one is kept
    fake.on("kv_cache_usage_perc", vector((a, "0.4"), (a | {"job": "dup"}, "0.6"), (b, "1.02")))
    fake.on("time_to_first_token", vector((a, "+Inf"), (b, "NaN")))
    fake.on("inter_token_latency", vector((a, "0.031"), (b, "NaN")))
    # queue time: empty vector -> missing for both
    fake.on("prompt_tokens_total", vector((a, "NaN"), (b, "0")))
    fake.on("generation_tokens_total", vector((a, "-1"), (b, "0")))
    fake.on("gateway_arrivals_total", vector((a, "3.0"), (b, "0")))
    fake.on("gateway_queue_depth", vector((a, "0"), (b, "0")))

    async def main() -> Any:
        async with serve(fake) as url:
            source = PrometheusMetricsSource(url)
            try:
                return await source.fetch_current(NOW)
            finally:
                source.close()

    snapshot = run(main())
    assert set(snapshot) == {("team-a", "llama"), ("team-b", "qwen")}  # the unlabelled series is ignored
    llama, qwen = snapshot[("team-a", "llama")], snapshot[("team-b", "qwen")]
    assert llama.request_rate_rps == 2.5
    assert llama.num_requests_waiting == 3.0 and llama.num_requests_running == 7.0
    assert llama.kv_cache_usage == 0.6
    assert llama.ttft_p95_seconds == 2560.0  # +Inf -> largest finite TTFT bucket
    assert llama.itl_p95_seconds == pytest.approx(0.031)
    assert llama.prompt_tokens_per_second is None and "prompt_tokens_per_second" in llama.missing
    assert llama.generation_tokens_per_second is None and "generation_tokens_per_second" in llama.missing
    assert "queue_time_p95_seconds" in llama.missing
    assert not llama.proves_idle
    assert qwen.kv_cache_usage == 1.0
    # NaN quantile over a present histogram = no traffic: None but NOT missing
    assert qwen.ttft_p95_seconds is None and "ttft_p95_seconds" not in qwen.missing
    assert qwen.itl_p95_seconds is None and "itl_p95_seconds" not in qwen.missing
    assert qwen.proves_idle and qwen.engine_reporting


def test_idleness_needs_the_gateway_signals_present() -> None:
    fake = FakePrometheus()
    a = dep("ns", "m")
    for fragment in ("request_success_total", "num_requests_waiting", "num_requests_running"):
        fake.on(fragment, vector((a, "0")))

    async def main() -> Any:
        async with serve(fake) as url:
            source = PrometheusMetricsSource(url)
            try:
                return await source.fetch_current(NOW)
            finally:
                source.close()

    metrics = run(main())[("ns", "m")]
    assert metrics.request_rate_rps == 0.0
    assert "gateway_arrivals_rps" in metrics.missing
    assert not metrics.proves_idle  # no data from the gateway is not proof of idleness


@pytest.mark.parametrize("status", [400, 500, 503])
def test_http_errors_become_metrics_unavailable_with_the_cause(status: int) -> None:
    fake = FakePrometheus()
    fake.status = status

    async def main() -> None:
        async with serve(fake) as url:
            source = PrometheusMetricsSource(url)
            try:
                await source.fetch_current(NOW)
            finally:
                source.close()

    with pytest.raises(MetricsUnavailableError, match=r"prometheus http://127\.0\.0\.1") as info:
        run(main())
    assert info.value.__cause__ is not None


def test_garbage_json_is_metrics_unavailable() -> None:
    fake = FakePrometheus()
    fake.on("", "this is not json")

    async def main() -> None:
        async with serve(fake) as url:
            source = PrometheusMetricsSource(url)
            try:
                await source.fetch_current(NOW)
            finally:
                source.close()

    with pytest.raises(MetricsUnavailableError):
        run(main())


def test_unreachable_prometheus_is_metrics_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # nothing listens on `port` any more

    async def main() -> None:
        source = PrometheusMetricsSource(f"http://127.0.0.1:{port}", timeout_seconds=1.0)
        try:
            await source.fetch_current(NOW)
        finally:
            source.close()

    with pytest.raises(MetricsUnavailableError) as info:
        run(main())
    assert isinstance(info.value.__cause__, OSError)


def test_a_slow_prometheus_times_out_within_the_budget() -> None:
    fake = FakePrometheus()
    fake.delay_seconds = 2.0

    async def main() -> float:
        async with serve(fake) as url:
            source = PrometheusMetricsSource(url, timeout_seconds=0.3)
            started = time.monotonic()
            try:
                with pytest.raises(MetricsUnavailableError):
                    await source.fetch_current(NOW)
                return time.monotonic() - started
            finally:
                source.close()

    elapsed = run(main())
    # every query runs at once and a read timeout is not retried: ~0.3 s, before the server (2 s) answers
    assert elapsed < 1.8


def matrix(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": m, "values": [[t, v] for t, v in values]} for m, values in series],
        },
    }


def test_history_uses_explicit_range_and_fills_gaps() -> None:
    fake = FakePrometheus()
    start = 1_700_000_040.0  # a multiple of 60
    a = dep("ns", "m")
    fake.on(
        "request_success_total",
        matrix((a, [(start, "1"), (start + 60, "2"), (start + 180, "NaN")])),
    )
    fake.on("gateway_arrivals_total", matrix((a, [(start + 60, "2.5")])))

    async def main() -> Any:
        async with serve(fake) as url:
            source = PrometheusMetricsSource(url)
            try:
                return await source.fetch_history(start + 10, start + 190, 60)
            finally:
                source.close()

    history = run(main())[("ns", "m")]
    assert history.timestamps_seconds == (start, start + 60, start + 120, start + 180)
    assert history.request_rate_rps == (1.0, 2.0, None, None)
    assert history.gateway_arrivals_rps == (None, 2.5, None, None)
    assert history.demand_rps() == (1.0, 2.5, None, None)
    ranges = [r for r in fake.requests if r["path"] == "/api/v1/query_range"]
    assert len(ranges) == 4  # one per history signal, one chunk
    for request in ranges:
        assert (float(request["start"]), request["step"]) == (start, "60s")
        assert "[60s]" in request["query"]


def test_long_history_is_split_into_chunks_below_the_point_limit() -> None:
    fake = FakePrometheus()
    start = 1_699_000_020.0

    async def main() -> Any:
        async with serve(fake) as url:
            source = PrometheusMetricsSource(url)
            try:
                return await source.fetch_history(start, start + 14 * 86400, 60)
            finally:
                source.close()

    assert run(main()) == {}
    ranges = [r for r in fake.requests if "gateway_arrivals" in r["query"]]
    assert len(ranges) == 3  # 20161 points at 60 s -> 3 chunks of <= 10000
    spans = sorted((float(r["start"]), float(r["end"])) for r in ranges)
    for (s1, e1), (s2, _e2) in itertools.pairwise(spans):
        assert s2 == e1 + 60
        assert (e1 - s1) / 60 + 1 <= 10_000
    assert spans[-1][1] == start + 14 * 86400


@pytest.mark.parametrize(("start", "end", "step"), [(0, 10, 0.5), (10, 0, 60), (0, 100, 1.5)])
def test_history_rejects_bad_windows(start: float, end: float, step: float) -> None:
    source = PrometheusMetricsSource("http://127.0.0.1:9")
    try:
        with pytest.raises(ValueError):
            run(source.fetch_history(start, end, step))
    finally:
        source.close()

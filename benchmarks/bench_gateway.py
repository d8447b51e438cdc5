"""Gateway benchmark: latency the gateway adds, and how fast a held request is released.

Everything runs on 127.0.0.1 in this process, each server on its own event loop thread (the
upstream, the gateway) and the client on the main loop, so the baseline and the gateway path
share the same machine noise:

1. overhead: sequential requests straight to a fake upstream vs through the gateway; the
   figures are p50/p99 of the end-to-end time and of the time to the first streamed byte, and
   the added milliseconds (gateway minus direct, per percentile).
2. wake-up: a request is held at zero replicas; an endpoint is then published (as the
   EndpointSlice watch would do when the pod turns Ready). Wake-up latency = answer time minus
   publish time. The issue's target is < 1 s on top of the modelled cold start; here the cold
   start is zero, so the figure is the gateway's own share.

Exit status 1 when a target fails. Bounded: about 10 s.
`--smoke`: 30 requests, 3 wake-ups, a burst of 10, targets not judged (benchmarks/benchkit.py).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from benchkit import SMOKE, verdict
from llmscale.gateway.app import build_app, start_site
from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.proxy import Gateway
from llmscale.gateway.routing import Endpoint
from llmscale_tools.fakes.gateway import FakeActivationSignaller, FakeEndpointSource

REQUESTS = 30 if SMOKE else 300
WAKEUPS = 3 if SMOKE else 20
BURST = 10 if SMOKE else 50
TARGET_ADDED_P50_MS = 10.0
TARGET_ADDED_P99_MS = 50.0
TARGET_WAKEUP_MAX_S = 1.0
NS, NAME, MODEL = "bench", "llm", "bench-model"

T = TypeVar("T")


class LoopThread:
    """An event loop on its own thread, to host a server."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result(timeout)

    def call(self, fn: Callable[..., Any], *args: Any) -> None:
        self.loop.call_soon_threadsafe(fn, *args)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def upstream_handler(request: web.Request) -> web.StreamResponse:
    payload = await request.json()
    if payload.get("stream"):
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i in range(4):
            await response.write(f'data: {{"choices":[{{"text":"t{i}"}}]}}\n\n'.encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response
    return web.json_response({"choices": [{"text": "hello"}], "model": payload["model"]})


async def start_upstream() -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_post("/v1/completions", upstream_handler)
    return await start_site(app, "127.0.0.1", 0)


async def timed(session: aiohttp.ClientSession, url: str, stream: bool) -> tuple[float, float]:
    """(seconds to the first body byte, seconds to the end)."""
    body = {"model": MODEL, "prompt": "hi", "max_tokens": 4, "stream": stream}
    started = time.perf_counter()
    async with session.post(url + "/v1/completions", json=body) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{url}: HTTP {resp.status}")
        await resp.content.readany()
        first = time.perf_counter() - started
        await resp.read()
    return first, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(session: aiohttp.ClientSession, url: str, stream: bool) -> dict[str, list[float]]:
    for _ in range(20):  # warm-up: connections, code paths
        await timed(session, url, stream)
    firsts, totals = [], []
    for _ in range(REQUESTS):
        first, total = await timed(session, url, stream)
        firsts.append(first)
        totals.append(total)
    return {"first_byte": firsts, "total": totals}


async def client_main(upstream_url: str, gateway_url: str, gw_thread: LoopThread, source: FakeEndpointSource,
                      upstream_port: int) -> dict[str, Any]:  # fmt: skip
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for stream in (False, True):
            kind = "stream" if stream else "plain"
            # interleave direct and gateway runs so that drifting noise hits both
            direct = await measure(session, upstream_url, stream)
            via = await measure(session, gateway_url, stream)
            for metric in ("total", "first_byte"):
                if not stream and metric == "first_byte":
                    continue
                row = {}
                for q, label in ((0.5, "p50"), (0.99, "p99")):
                    d, g = percentile(direct[metric], q) * 1e3, percentile(via[metric], q) * 1e3
                    row[label] = (d, g, g - d)
                results[f"{kind}_{metric}"] = row
        # wake-up: hold at zero, then publish the endpoint
        wakeups = []
        endpoint = Endpoint("127.0.0.1", upstream_port)
        for _ in range(WAKEUPS):
            gw_thread.call(source.set_endpoints, NS, NAME, [])
            await asyncio.sleep(0.02)
            request = asyncio.create_task(timed(session, gateway_url, False))
            await asyncio.sleep(0.05)  # the request is now held
            if request.done():
                raise RuntimeError("request was not held at zero replicas")
            published = time.perf_counter()
            gw_thread.call(source.set_endpoints, NS, NAME, [endpoint])
            await request
            wakeups.append(time.perf_counter() - published)
        results["wakeup_seconds"] = wakeups
        # a burst held at zero: every request must be released when the first replica appears
        gw_thread.call(source.set_endpoints, NS, NAME, [])
        await asyncio.sleep(0.02)
        burst = [asyncio.create_task(timed(session, gateway_url, i % 2 == 0)) for i in range(BURST)]
        await asyncio.sleep(0.2)
        if any(task.done() for task in burst):
            raise RuntimeError("burst requests were not held at zero replicas")
        published = time.perf_counter()
        gw_thread.call(source.set_endpoints, NS, NAME, [endpoint])
        await asyncio.gather(*burst)
        results["burst_release_seconds"] = time.perf_counter() - published
    return results


def main() -> int:
    up_thread, gw_thread = LoopThread("upstream"), LoopThread("gateway")
    upstream_runner, upstream_port = up_thread.run(start_upstream())
    source = FakeEndpointSource()
    source.add_deployment(NS, NAME, MODEL)
    signaller = FakeActivationSignaller()
    gateway = Gateway(GatewayConfig(port=0, hold_timeout_seconds=10, auth="none"), source, signaller)
    gw_runner, gw_port = gw_thread.run(start_site(build_app(gateway), "127.0.0.1", 0))
    gw_thread.call(source.set_endpoints, NS, NAME, [Endpoint("127.0.0.1", upstream_port)])
    try:
        started = time.monotonic()
        results = asyncio.run(
            client_main(
                f"http://127.0.0.1:{upstream_port}",
                f"http://127.0.0.1:{gw_port}",
                gw_thread,
                source,
                upstream_port,
            )
        )
        elapsed = time.monotonic() - started
    finally:
        gw_thread.run(gw_runner.cleanup())
        up_thread.run(upstream_runner.cleanup())
        gw_thread.close()
        up_thread.close()

    print(f"gateway benchmark: {REQUESTS} sequential requests per path, 127.0.0.1, {elapsed:.1f}s")
    print(f"{'path':<22}{'pct':>5}{'direct ms':>12}{'gateway ms':>12}{'added ms':>10}{'ratio':>8}")
    failures = []
    for name, row in results.items():
        if name in ("wakeup_seconds", "burst_release_seconds"):
            continue
        for label, (direct, via, added) in row.items():
            print(f"{name:<22}{label:>5}{direct:>12.2f}{via:>12.2f}{added:>10.2f}{via / direct:>8.2f}")
    plain = results["plain_total"]
    if plain["p50"][2] > TARGET_ADDED_P50_MS:
        failures.append(f"added p50 {plain['p50'][2]:.2f} ms > {TARGET_ADDED_P50_MS} ms")
    if plain["p99"][2] > TARGET_ADDED_P99_MS:
        failures.append(f"added p99 {plain['p99'][2]:.2f} ms > {TARGET_ADDED_P99_MS} ms")
    wakeups = results["wakeup_seconds"]
    print(
        f"wake-up (endpoint published -> held request answered), {len(wakeups)} runs: "
        f"p50 {statistics.median(wakeups) * 1e3:.1f} ms, max {max(wakeups) * 1e3:.1f} ms "
        f"(target < {TARGET_WAKEUP_MAX_S * 1e3:.0f} ms)"
    )
    burst_seconds = results["burst_release_seconds"]
    print(
        f"burst: {BURST} requests held at zero, all answered {burst_seconds * 1e3:.1f} ms after the "
        f"endpoint was published (target < {TARGET_WAKEUP_MAX_S * 1e3:.0f} ms)"
    )
    if burst_seconds > TARGET_WAKEUP_MAX_S:
        failures.append(f"burst release {burst_seconds:.3f} s > {TARGET_WAKEUP_MAX_S} s")
    print(f"activation signals sent: {len(signaller.calls)} (one per wake-up at most 1/s per deployment)")
    if max(wakeups) > TARGET_WAKEUP_MAX_S:
        failures.append(f"wake-up max {max(wakeups):.3f} s > {TARGET_WAKEUP_MAX_S} s")
    return verdict(failures)


if __name__ == "__main__":
    sys.exit(main())

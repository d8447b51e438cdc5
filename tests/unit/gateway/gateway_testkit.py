"""Helpers for the gateway tests: a tiny streaming upstream and a running gateway, on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from llmscale.gateway.app import build_app, start_site
from llmscale.gateway.auth import KeyStore
from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.proxy import Gateway
from llmscale.gateway.routing import Endpoint
from llmscale_tools.fakes.gateway import FakeActivationSignaller, FakeEndpointSource


class FakeUpstream:
    """A vLLM stand-in: streams `chunks` SSE events, each released by `allow(n)` when gated."""

    def __init__(self, name: str, chunks: int = 3, gated: bool = False) -> None:
        self.name = name
        self.chunks = chunks
        self.gated = gated
        self._permits: asyncio.Queue[None] = asyncio.Queue()
        self.requests: list[dict[str, Any]] = []
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.completed = 0
        self.status = 200
        self.block: asyncio.Event | None = None  # non-streaming requests wait on it when set
        self.break_after: int | None = None  # drop the connection after this many stream chunks
        self.port = 0

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint("127.0.0.1", self.port, pod=self.name)

    def allow(self, n: int = 1) -> None:
        for _ in range(n):
            self._permits.put_nowait(None)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        self.requests.append(payload)
        self.started.set()
        if self.status != 200:
            return web.json_response({"error": "not ready"}, status=self.status)
        try:
            if payload.get("stream"):
                response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await response.prepare(request)
                for i in range(self.chunks):
                    if self.gated:
                        await self._permits.get()
                    await response.write(f"data: {self.name}-{i}\n\n".encode())
                    if self.break_after is not None and i + 1 >= self.break_after:
                        assert request.transport is not None
                        request.transport.abort()  # the replica dies mid-stream
                        return response
                await response.write(b"data: [DONE]\n\n")
                await response.write_eof()
                self.completed += 1
                return response
            if self.block is not None:
                await self.block.wait()
            self.completed += 1
            return web.json_response({"upstream": self.name, "model": payload["model"]})
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@asynccontextmanager
async def serving_upstream(upstream: FakeUpstream) -> AsyncIterator[FakeUpstream]:
    app = web.Application()
    for path in ("/v1/completions", "/v1/chat/completions"):
        app.router.add_post(path, upstream.handle)
    runner, upstream.port = await start_site(app, "127.0.0.1", upstream.port)
    try:
        yield upstream
    finally:
        await runner.cleanup()


class RunningGateway:
    def __init__(
        self, gateway: Gateway, url: str, source: FakeEndpointSource, signaller: FakeActivationSignaller
    ):
        self.gateway = gateway
        self.url = url
        self.source = source
        self.signaller = signaller


@asynccontextmanager
async def running_gateway(
    config: GatewayConfig | None = None,
    source: FakeEndpointSource | None = None,
    keys: KeyStore | None = None,
) -> AsyncIterator[RunningGateway]:
    source = source or FakeEndpointSource()
    signaller = FakeActivationSignaller()
    gateway = Gateway(config or GatewayConfig(port=0, auth="none"), source, signaller, keys=keys)
    runner, port = await start_site(build_app(gateway), "127.0.0.1", 0)
    try:
        yield RunningGateway(gateway, f"http://127.0.0.1:{port}", source, signaller)
    finally:
        await runner.cleanup()


async def eventually(predicate: Any, timeout_seconds: float = 5.0) -> None:
    """Poll `predicate` (bounded) until it holds; fail the test when it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_seconds
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_seconds}s")
        await asyncio.sleep(0.01)

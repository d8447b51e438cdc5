"""The aiohttp application of the emulator: vLLM's OpenAI-compatible routes and /metrics."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from llmscale import __version__
from llmscale.errors import UserInputError
from llmscale_tools.emulator.config import EmulatorConfig
from llmscale_tools.emulator.metrics import VllmMetrics
from llmscale_tools.emulator.protocol import Endpoint, RequestError, ResponseShaper, parse_request
from llmscale_tools.emulator.runtime import EngineLoop, TokenStream

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
DRAIN_POLL_SECONDS = 0.05


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _error(exc: RequestError) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.status)


class EmulatorServer:
    """Routes and lifecycle; the engine loop does the modelling."""

    def __init__(
        self, config: EmulatorConfig, loop: EngineLoop, metrics: VllmMetrics, max_model_len: int
    ) -> None:
        self.config = config
        self.engine_loop = loop
        self.metrics = metrics
        self.max_model_len = max_model_len
        self.draining = False
        self.created = int(time.time())

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/health", self.health)
        app.router.add_get("/ping", self.health)
        app.router.add_get("/version", self.version)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/metrics", self.metrics_page)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, _app: web.Application) -> None:
        self.engine_loop.start()

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self.engine_loop.stop()

    def begin_drain(self) -> None:
        """Readiness goes 503 and new requests are refused; in-flight ones carry on."""
        self.draining = True

    async def wait_idle(self, timeout_seconds: float) -> bool:
        """True when every in-flight request finished within the timeout."""
        deadline = time.monotonic() + timeout_seconds
        while self.engine_loop.in_flight > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        return True

    async def health(self, _request: web.Request) -> web.Response:
        if self.draining:
            return web.Response(status=503, text="draining")
        return web.Response(status=200)

    async def version(self, _request: web.Request) -> web.Response:
        return web.json_response({"version": f"llmscale-emulator-{__version__}"})

    async def models(self, _request: web.Request) -> web.Response:
        data: list[dict[str, Any]] = [
            {
                "id": name,
                "object": "model",
                "created": self.created,
                "owned_by": "vllm",
                "root": self.config.model,
                "parent": None,
                "max_model_len": self.max_model_len,
                "permission": [],
            }
            for name in self.config.accepted_names
        ]
        return web.json_response({"object": "list", "data": data})

    async def metrics_page(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4"})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "completions")

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, "chat")

    async def _generate(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        if self.draining:
            return _error(RequestError("server is shutting down", status=503))
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(RequestError(f"request body: not valid JSON ({exc})"))
        try:
            parsed = parse_request(
                body, endpoint, accepted_models=self.config.accepted_names, max_model_len=self.max_model_len
            )
        except RequestError as exc:
            return _error(exc)
        shaper = ResponseShaper(parsed)
        try:
            stream = self.engine_loop.submit(parsed.prompt_tokens, parsed.max_tokens)
        except UserInputError as exc:  # e.g. longer than the whole KV cache
            return _error(RequestError(str(exc), param="max_tokens"))
        try:
            if parsed.stream:
                return await self._stream(request, shaper, stream)
            await stream.wait_finished()
            return web.json_response(
                shaper.full_response(stream.tokens_generated, stream.finished_reason or "length")
            )
        finally:
            # a client disconnect cancels the handler (or breaks a write): free the engine slot
            self.engine_loop.cancel(stream)

    async def _stream(
        self, request: web.Request, shaper: ResponseShaper, stream: TokenStream
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=SSE_HEADERS)
        await response.prepare(request)
        if shaper.request.endpoint == "chat":
            await response.write(_sse(shaper.role_chunk()))
        while True:
            fresh = await stream.next_tokens()
            final = stream.done and stream.tokens_taken == stream.tokens_generated
            if fresh == 0 and not final:
                continue
            if fresh > 0 or final:
                # tokens that piled up while this handler was busy go out in one chunk, as
                # vLLM's output collector merges them
                await response.write(
                    _sse(shaper.token_chunk(fresh, stream.finished_reason if final else None))
                )
            if final:
                break
        if shaper.request.include_usage:
            await response.write(_sse(shaper.usage_chunk(stream.tokens_generated)))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

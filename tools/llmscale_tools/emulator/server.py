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
from llmscale_tools.emulator.errors import RequestError
from llmscale_tools.emulator.metrics import VllmMetrics
from llmscale_tools.emulator.protocol import Endpoint, ResponseShaper, parse_request
from llmscale_tools.emulator.runtime import EngineLoop, TokenStream

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
DRAIN_POLL_SECONDS = 0.05


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def _error(exc: RequestError) -> web.Response:
    return web.json_response(exc.to_json(), status=exc.status)


@web.middleware
async def _json_not_found(request: web.Request, handler: Any) -> web.StreamResponse:
    """Unknown routes and methods answer JSON as vLLM's FastAPI server does, never plain text."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPNotFound:
        return web.json_response({"detail": "Not Found"}, status=404)
    except web.HTTPMethodNotAllowed:
        return web.json_response({"detail": "Method Not Allowed"}, status=405)
    return response


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
        app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[_json_not_found])
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
        self.metrics.record_request_params(n=parsed.n, max_tokens=parsed.max_tokens)
        streams: list[TokenStream] = []
        try:
            # n > 1: one engine request per choice, as vLLM's parallel sampling fans out
            for _ in range(parsed.n):
                streams.append(
                    self.engine_loop.submit(parsed.prompt_tokens, parsed.max_tokens, parsed.finish_reason)
                )
        except UserInputError as exc:  # e.g. longer than the whole KV cache
            for stream in streams:
                self.engine_loop.cancel(stream)
            return _error(RequestError(str(exc), param="max_tokens"))
        try:
            if parsed.stream:
                return await self._stream(request, shaper, streams)
            for stream in streams:
                await stream.wait_finished()
            return web.json_response(
                shaper.full_response(
                    [s.tokens_generated for s in streams], [s.finished_reason or "length" for s in streams]
                )
            )
        finally:
            # a client disconnect cancels the handler (or breaks a write): free the engine slots
            for stream in streams:
                self.engine_loop.cancel(stream)

    async def _stream(
        self, request: web.Request, shaper: ResponseShaper, streams: list[TokenStream]
    ) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=SSE_HEADERS)
        await response.prepare(request)
        if shaper.request.endpoint == "chat":
            for index in range(len(streams)):
                await response.write(_sse(shaper.role_chunk(index)))
        if len(streams) == 1:
            await self._stream_choice(response, shaper, streams[0], 0)
        else:
            # choices interleave as their tokens come; one writer at a time per chunk
            await asyncio.gather(
                *(self._stream_choice(response, shaper, s, i) for i, s in enumerate(streams))
            )
        if shaper.request.include_usage:
            await response.write(_sse(shaper.usage_chunk(sum(s.tokens_generated for s in streams))))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    @staticmethod
    async def _stream_choice(
        response: web.StreamResponse, shaper: ResponseShaper, stream: TokenStream, index: int
    ) -> None:
        sent = 0
        while True:
            fresh = await stream.next_tokens()
            final = stream.done and stream.tokens_taken == stream.tokens_generated
            if fresh == 0 and not final:
                continue
            # tokens that piled up while this handler was busy go out in one chunk, as
            # vLLM's output collector merges them
            chunk = shaper.token_chunk(sent, sent + fresh, final, index)
            if final and stream.finished_reason != shaper.request.finish_reason:
                chunk["choices"][0]["finish_reason"] = stream.finished_reason
            await response.write(_sse(chunk))
            sent += fresh
            if final:
                return

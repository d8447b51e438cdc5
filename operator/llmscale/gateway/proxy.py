"""The data path: route an OpenAI request by `model`, hold it at zero replicas, stream it through.

Order of business for one request:
1. Read and parse the JSON body (400 naming the field when it is not usable).
2. Look the model up (served name, then model id). Before the first full listing from the API
   server an unknown name is waited on (never 404 a model we simply have not listed yet).
   After it, unknown is 404 with an OpenAI error body.
3. Take the ready, non-terminating endpoint with the fewest in-flight requests. If there is none,
   hold the request (bounded per deployment), signal the operator, and for streaming clients send
   the headers at once and SSE comments while waiting.
4. Forward the body unchanged (except a `model` rewrite when the client used the model id of a
   deployment with a different served name) and copy each upstream chunk as it arrives.
   A refused connection or a 503 from a replica, before any upstream byte was relayed, moves the
   request to another replica (the replica is draining or not quite up).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
from aiohttp import web

from llmscale.gateway.activation import ActivationThrottle
from llmscale.gateway.auth import ApiKey, KeyStore, bearer_token, retry_after_header
from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.metrics import GatewayMetrics
from llmscale.gateway.routing import DeploymentKey, Endpoint, RoutingTable
from llmscale.gateway.sources import ActivationSignaller, EndpointSource

log = logging.getLogger(__name__)

KEEPALIVE_COMMENT = b": keep-alive\n\n"
# A replica that refused (not listening yet, or draining) is retried after this long, while the
# request waits like a held one: a pod can be marked Ready a moment before its server listens.
REFUSED_RETRY_SECONDS = 0.2
# Headers that describe one hop, not the message; aiohttp sets its own framing.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


class _RetryElsewhere(Exception):
    """The replica refused the request before anything was relayed: try another one."""


def openai_error(
    status: int,
    message: str,
    error_type: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return web.json_response(body, status=status, headers=headers)


def sse_error_event(message: str, code: str) -> bytes:
    error = {"error": {"message": message, "type": "service_unavailable", "param": None, "code": code}}
    return b"data: " + json.dumps(error).encode() + b"\n\n"


def parse_request_body(body: bytes) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(payload, error message, offending field) — exactly one of payload and message is set."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"request body is not valid JSON: {exc}", None
    if not isinstance(payload, dict):
        return None, f"request body must be a JSON object, got {type(payload).__name__}", None
    model = payload.get("model")
    if model is None:
        return None, "missing required field 'model'", "model"
    if not isinstance(model, str) or not model:
        return None, f"field 'model' must be a non-empty string, got {model!r}", "model"
    return payload, None, None


class Gateway:
    """One gateway instance: routing table, hold queues, upstream client and metrics."""

    def __init__(
        self,
        config: GatewayConfig,
        source: EndpointSource,
        signaller: ActivationSignaller,
        metrics: GatewayMetrics | None = None,
        keys: KeyStore | None = None,
    ) -> None:
        self.config = config
        # With auth on and no key source, the store stays empty: every request is refused (401).
        self.keys = keys if keys is not None else KeyStore()
        self.source = source
        self.metrics = metrics or GatewayMetrics()
        self.table = RoutingTable(on_deployment_added=lambda route: self.metrics.ensure_series(route.key))
        self.throttle = ActivationThrottle(
            signaller,
            on_result=lambda key, ok: self.metrics.activation_signals.labels(
                *key, "ok" if ok else "error"
            ).inc(),
        )
        self._held: dict[DeploymentKey, int] = {}
        self._session: aiohttp.ClientSession | None = None

    def held(self, key: DeploymentKey) -> int:
        return self._held.get(key, 0)

    async def start(self) -> None:
        # auto_decompress=False: bytes pass through untouched, Content-Encoding and all
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None),
        )
        await self.source.start(self.table)

    async def stop(self) -> None:
        await self.source.stop()
        await self.throttle.close()
        if self._session is not None:
            await self._session.close()

    # ---- the request path --------------------------------------------------------------------
    def authenticate(self, request: web.Request) -> tuple[ApiKey | None, web.Response | None]:
        """(the caller's key, None) or (None, the 401/429 answer). Auth off: (None, None).

        Runs before the body is read and the model looked up: a refused request never reaches
        the routing table, so it can never wake a deployment.
        """
        if self.config.auth == "none":
            return None, None
        token = bearer_token(request.headers.get("Authorization"))
        if token is None:
            self.metrics.auth_rejections.labels("missing_key").inc()
            return None, openai_error(
                401,
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                "invalid_request_error",
                code="missing_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        key = self.keys.authenticate(token)
        if key is None:
            self.metrics.auth_rejections.labels("invalid_key").inc()
            return None, openai_error(
                401,
                "Incorrect API key provided.",
                "invalid_request_error",
                code="invalid_api_key",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        wait = self.keys.take(key, asyncio.get_running_loop().time())
        if wait > 0:
            self.metrics.auth_rejections.labels("rate_limited").inc()
            return None, openai_error(
                429,
                f"Rate limit reached for this API key ({key.requests_per_minute} requests per minute).",
                "requests",
                code="rate_limit_exceeded",
                headers={"Retry-After": retry_after_header(wait)},
            )
        return key, None

    async def handle_inference(self, request: web.Request) -> web.StreamResponse:
        api_key, denial = self.authenticate(request)
        if denial is not None:
            return denial
        body = await request.read()
        payload, problem, field = parse_request_body(body)
        if payload is None:
            self.metrics.unroutable.labels("bad_request").inc()
            return openai_error(400, problem or "bad request", "invalid_request_error", param=field)
        model: str = payload["model"]
        match = self.table.lookup(model)
        if match is None and not self.table.synced:
            await self.table.wait_synced(self.config.hold_timeout_seconds)
            match = self.table.lookup(model)
        if match is not None and api_key is not None and not api_key.permits(match.route):
            self.metrics.auth_rejections.labels("forbidden_model").inc()
            return openai_error(
                403,
                f"this API key may not call model {model!r}",
                "permission_error",
                param="model",
                code="model_not_permitted",
            )
        if match is None:
            self.metrics.unroutable.labels("unknown_model").inc()
            visible = [r for r in self.table.routes() if api_key is None or api_key.permits(r)]
            known = ", ".join(sorted({r.engine_model_name for r in visible})) or "none"
            return openai_error(
                404,
                f"model {model!r} is not served here; known models: {known}",
                "invalid_request_error",
                param="model",
                code="model_not_found",
            )
        if match.rewrite_model_to is not None:
            payload["model"] = match.rewrite_model_to
            body = json.dumps(payload).encode()
        key = match.route.key
        self.metrics.arrivals.labels(*key).inc()
        stream = payload.get("stream") is True
        try:
            return await self._serve(request, key, body, stream)
        except ConnectionResetError:
            # the client went away mid-response; the upstream request was closed on the way out
            log.debug("client of %s/%s disconnected", *key)
            return web.Response(status=499)

    async def _serve(
        self, request: web.Request, key: DeploymentKey, body: bytes, stream: bool
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        excluded: set[str] = set()
        sse: web.StreamResponse | None = None  # headers already sent to a held streaming client
        hold_deadline: float | None = None
        while True:
            endpoint = self.table.acquire(key, frozenset(excluded))
            if endpoint is None:
                if hold_deadline is None:  # first hold of this request: counted once
                    hold_deadline = loop.time() + self.config.hold_timeout_seconds
                    self.metrics.held.labels(*key).inc()
                outcome, sse = await self._hold(request, key, stream, hold_deadline, excluded, sse)
                if isinstance(outcome, str):
                    return await self._reject(key, outcome, sse)
                endpoint = outcome
            try:
                return await self._forward(request, key, endpoint, body, sse)
            except _RetryElsewhere as exc:
                log.info(
                    "replica %s of %s/%s refused a request (%s); trying another", endpoint.url, *key, exc
                )
                excluded.add(endpoint.url)
                if hold_deadline is not None and loop.time() >= hold_deadline:
                    return await self._reject(key, "upstream_unavailable", sse)

    async def _hold(
        self,
        request: web.Request,
        key: DeploymentKey,
        stream: bool,
        deadline: float,
        excluded: set[str],
        sse: web.StreamResponse | None,
    ) -> tuple[Endpoint | str, web.StreamResponse | None]:
        """Wait for a routable endpoint: (endpoint, sse) or (reject reason, sse).

        `sse` is the response already started for this streaming client by an earlier hold (a
        request can be held twice when the replica it was woken for refuses it).
        """
        config = self.config
        if self.held(key) >= config.queue_size:
            return "queue_full", sse
        loop = asyncio.get_running_loop()
        self._held[key] = self.held(key) + 1
        self.metrics.queue_depth.labels(*key).inc()
        started = loop.time()
        try:
            if stream and sse is None:
                sse = web.StreamResponse(
                    status=200,
                    headers={
                        "Content-Type": "text/event-stream; charset=utf-8",
                        "Cache-Control": "no-cache",
                        "X-Accel-Buffering": "no",
                    },
                )
                await sse.prepare(request)
                await sse.write(KEEPALIVE_COMMENT)
            next_keepalive = loop.time() + config.keepalive_interval_seconds
            refresh: float | None = None  # the first signal goes out at once (1 s limit only)
            while True:
                if self.table.route(key) is None:
                    return "deployment_removed", sse
                endpoint = self.table.acquire(key, frozenset(excluded))
                if endpoint is not None:
                    return endpoint, sse
                if not self.table.routable_endpoints(key):
                    self.throttle.request(key, refresh)
                    refresh = config.activation_refresh_seconds
                now = loop.time()
                if now >= deadline:
                    return "hold_timeout", sse
                wake_at = min(
                    deadline,
                    now + (REFUSED_RETRY_SECONDS if excluded else 1.0),
                    next_keepalive if sse is not None else deadline,
                )
                if not await self.table.wait_changed(key, wake_at - now):
                    excluded.clear()  # replicas that refused may be listening by now
                if sse is not None and loop.time() >= next_keepalive:
                    await sse.write(KEEPALIVE_COMMENT)
                    next_keepalive = loop.time() + config.keepalive_interval_seconds
        finally:
            self._held[key] = self.held(key) - 1
            self.metrics.queue_depth.labels(*key).dec()
            self.metrics.hold_seconds.labels(*key).observe(loop.time() - started)

    async def _forward(
        self,
        request: web.Request,
        key: DeploymentKey,
        endpoint: Endpoint,
        body: bytes,
        sse: web.StreamResponse | None,
    ) -> web.StreamResponse:
        assert self._session is not None, "Gateway.start() was not called"
        loop = asyncio.get_running_loop()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        timeout = aiohttp.ClientTimeout(
            total=self.config.request_timeout_seconds, sock_connect=self.config.connect_timeout_seconds
        )
        in_flight = self.metrics.in_flight.labels(*key)
        in_flight.inc()
        started = loop.time()
        upstream: aiohttp.ClientResponse | None = None
        try:
            try:
                upstream = await self._session.request(
                    request.method,
                    endpoint.url + request.path_qs,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                )
            except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
                raise _RetryElsewhere(str(exc) or type(exc).__name__) from exc
            except TimeoutError:
                return await self._reject(key, "upstream_timeout", sse)
            except aiohttp.ClientError as exc:
                log.warning("upstream %s of %s/%s failed: %s", endpoint.url, *key, exc)
                return await self._reject(key, "upstream_unavailable", sse)
            self.metrics.upstream_latency_seconds.labels(*key).observe(loop.time() - started)
            if upstream.status == 503:
                await upstream.read()
                raise _RetryElsewhere("503 from replica")
            self.metrics.forwarded.labels(*key, str(upstream.status)).inc()
            if sse is None:
                response = web.StreamResponse(
                    status=upstream.status,
                    reason=upstream.reason,
                    headers={k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP},
                )
                await response.prepare(request)
            else:
                response = sse
                if upstream.status >= 400:
                    detail = (await upstream.read()).decode(errors="replace")
                    await response.write(
                        sse_error_event(f"replica answered {upstream.status}: {detail}", "upstream")
                    )
                    await response.write_eof()
                    return response
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Headers are gone already. A stream ends with an error event (no `[DONE]`); any
                # other body is cut short and the connection closed, so it cannot look complete.
                log.warning("upstream %s of %s/%s broke mid-response: %s", endpoint.url, *key, exc)
                self.metrics.rejected.labels(*key, "upstream_broken").inc()
                if response.content_type == "text/event-stream":
                    await response.write(
                        sse_error_event(f"replica failed mid-stream: {exc}", "upstream_broken")
                    )
                    await response.write_eof()
                else:
                    response.force_close()
                    if request.transport is not None:
                        request.transport.close()
                return response
            await response.write_eof()
            return response
        finally:
            if upstream is not None:
                # close (not release) so that an unfinished upstream request is cancelled
                upstream.close()
            self.table.release(endpoint)
            in_flight.dec()

    async def _reject(
        self, key: DeploymentKey, reason: str, sse: web.StreamResponse | None
    ) -> web.StreamResponse:
        self.metrics.rejected.labels(*key, reason).inc()
        messages = {
            "queue_full": f"too many requests waiting for a replica (queue of {self.config.queue_size} full)",
            "hold_timeout": f"no replica became ready within {self.config.hold_timeout_seconds:g}s",
            "upstream_unavailable": "no replica accepted the request",
            "upstream_timeout": f"the replica did not answer within {self.config.request_timeout_seconds:g}s",
            "deployment_removed": "the LLMDeployment was deleted while the request waited",
        }
        message = f"{key[0]}/{key[1]}: {messages.get(reason, reason)}"
        if sse is not None:
            # a held streaming client already has a 200 and SSE headers: end with an error event
            await sse.write(sse_error_event(message, reason))
            await sse.write_eof()
            return sse
        status = 504 if reason == "upstream_timeout" else 503
        return openai_error(
            status,
            message,
            "service_unavailable",
            code=reason,
            headers={"Retry-After": str(self.config.retry_after_seconds)},
        )

"""The gateway's HTTP surface (aiohttp) and its lifecycle."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from llmscale.gateway.proxy import Gateway

GATEWAY_KEY = web.AppKey("gateway", Gateway)

INFERENCE_PATHS = ("/v1/completions", "/v1/chat/completions", "/v1/embeddings")


async def _models(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY_KEY]
    api_key, denial = gateway.authenticate(request)
    if denial is not None:
        return denial
    created = int(time.time())
    data = [
        {
            "id": route.engine_model_name,
            "object": "model",
            "created": created,
            "owned_by": "llmscale",
            "root": route.model_name,
            # where it runs, and whether a request now would be held (scaled to zero)
            "llmscale": {
                "namespace": route.namespace,
                "llmdeployment": route.name,
                "ready_endpoints": len(gateway.table.routable_endpoints(route.key)),
            },
        }
        for route in gateway.table.routes()
        if api_key is None or api_key.permits(route)
    ]
    return web.json_response({"object": "list", "data": data})


async def _health(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY_KEY]
    if not gateway.table.synced:
        return web.json_response({"status": "syncing"}, status=503)
    body: dict[str, object] = {"status": "ok", "deployments": len(gateway.table.routes())}
    if gateway.config.auth == "api-key":
        # 0 means every request is refused: say so where probes and humans look
        body["api_keys"] = len(gateway.keys.keys)
    return web.json_response(body)


async def _metrics(request: web.Request) -> web.Response:
    body = request.app[GATEWAY_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(gateway: Gateway) -> web.Application:
    """The aiohttp application; the gateway starts and stops with it."""
    app = web.Application(client_max_size=64 * 1024 * 1024)  # long prompts are large JSON
    app[GATEWAY_KEY] = gateway
    for path in INFERENCE_PATHS:
        app.router.add_post(path, gateway.handle_inference)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)

    async def lifecycle(_app: web.Application):  # type: ignore[no-untyped-def]
        await gateway.start()
        yield
        await gateway.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


async def start_site(
    app: web.Application, host: str, port: int, shutdown_timeout_seconds: float = 5.0
) -> tuple[web.AppRunner, int]:
    """Serve `app` on host:port (0 = any free port); returns the runner and the bound port.

    handler_cancellation=True: when a client disconnects its handler is cancelled, which closes
    the upstream request (the replica stops generating for nobody). On shutdown, in-flight
    requests get `shutdown_timeout_seconds` to finish.
    """
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=shutdown_timeout_seconds
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            bound = int(address[1])
    return runner, bound

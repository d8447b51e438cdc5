"""Running the gateway process: Kubernetes sources, the HTTP site, and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import TYPE_CHECKING

from llmscale.gateway.app import build_app, start_site
from llmscale.gateway.auth import KeyStore
from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.keysource import KubeKeySource
from llmscale.gateway.kube import KubeActivationSignaller, KubeEndpointSource, load_kube_config
from llmscale.gateway.proxy import Gateway

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from aiohttp import web
    from kubernetes import client


class RunningGateway:
    """A gateway serving in this process (the demo and e2e tests): `url`, `gateway`, `stop()`."""

    def __init__(
        self, gateway: Gateway, runner: web.AppRunner, url: str, key_source: KubeKeySource | None = None
    ) -> None:
        self.gateway = gateway
        self.url = url
        self._runner = runner
        self._key_source = key_source

    async def stop(self) -> None:
        if self._key_source is not None:
            await self._key_source.stop()
        await self._runner.cleanup()


async def start_gateway(
    config: GatewayConfig, api_client: client.ApiClient | None = None, shutdown_timeout_seconds: float = 5.0
) -> RunningGateway:
    """Start a gateway with the Kubernetes source and signaller on `config.host:config.port`.

    `api_client` defaults to in-cluster config or KUBECONFIG; port 0 picks a free port.
    """
    if api_client is None:
        api_client = await asyncio.to_thread(load_kube_config)
    keys = KeyStore()
    gateway = Gateway(
        config,
        KubeEndpointSource(config.namespaces, api_client=api_client),
        KubeActivationSignaller(api_client),
        keys=keys,
    )
    key_source = None
    if config.auth == "api-key":
        # keys first: the site never listens before they are loaded (or startup failed)
        key_source = KubeKeySource(config, keys, gateway.metrics, api_client)
        await key_source.start()
    runner, port = await start_site(build_app(gateway), config.host, config.port, shutdown_timeout_seconds)
    return RunningGateway(gateway, runner, f"http://{config.host}:{port}", key_source)


async def serve(
    config: GatewayConfig,
    *,
    shutdown_timeout_seconds: float = 30.0,
    json_output: bool = False,
) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting and let in-flight requests finish."""
    running = await start_gateway(config, shutdown_timeout_seconds=shutdown_timeout_seconds)
    url = running.url
    scope = list(config.namespaces) or ["(all)"]
    if config.auth == "none":
        log.warning("authentication is OFF (--auth none): anyone who reaches %s may call every model", url)
    if json_output:
        print(
            json.dumps({"event": "listening", "url": url, "namespaces": list(config.namespaces)}), flush=True
        )
    else:
        print(
            f"llmscale gateway listening on {url} (namespaces: {', '.join(scope)})",
            file=sys.stderr,
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await running.stop()

"""Running the gateway process: Kubernetes sources, the HTTP site, and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

from llmscale.gateway.app import build_app, start_site
from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.kube import KubeActivationSignaller, KubeEndpointSource, load_kube_config
from llmscale.gateway.proxy import Gateway


async def serve(
    config: GatewayConfig,
    *,
    shutdown_timeout_seconds: float = 30.0,
    json_output: bool = False,
) -> None:
    """Serve until SIGTERM/SIGINT; then stop accepting and let in-flight requests finish."""
    api_client = await asyncio.to_thread(load_kube_config)  # fail fast, before listening
    gateway = Gateway(
        config,
        KubeEndpointSource(config.namespaces, api_client=api_client),
        KubeActivationSignaller(api_client),
    )
    runner, port = await start_site(build_app(gateway), config.host, config.port, shutdown_timeout_seconds)
    url = f"http://{config.host}:{port}"
    scope = list(config.namespaces) or ["(all)"]
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
        await runner.cleanup()

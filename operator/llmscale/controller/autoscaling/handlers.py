"""The scaling loop under kopf's lifecycle (imported by `llmscale operator`, controller/cli.py).

Importing this module registers:
- a startup handler that builds the shared `Autoscaler` (Prometheus adapter, Kubernetes I/O
  through the operator's `ReconcileQueue`, the operator's /metrics server) into kopf's memo;
- one kopf daemon per LLMDeployment (`scale_llmdeployment`): it decides for its object on every
  tick (`Autoscaler.serve`), and all daemons of a tick share ONE batched Prometheus read and
  ONE list of Deployments and pods (`Autoscaler.read_cluster`). kopf starts a daemon when it
  first sees the object and stops it on deletion, so the loop's registry is kopf's own watch;
- a watch (`on.event`) on LLMDeployments that hands the gateway's
  `llmscale.dev/activation-requested-at` annotation to the loop at once (0 -> 1 without waiting
  for a tick);
- a cleanup handler that stops the serving (the adapters' threads end with the process: kopf can
  still start a daemon for an object it processes during shutdown, which must not find them
  closed).

High availability: with peering (`--peering`, several operator replicas), kopf pauses every
replica but the one with the highest priority: it closes their watches and stops their daemons,
so a paused replica neither reads nor scales. A stopped daemon forgets its object's in-memory
state; when the replica becomes active again (the active one died), kopf re-lists, restarts the
daemons, and each rebuilds its state from the object's status (`scalerState`, `lastDecisions`),
which the previous active replica kept current, so decision history and the scaler's windows
carry over and the first decision continues from where the other replica stopped.

Settings: `kopf.run(memo=kopf.Memo(autoscaler_settings=...))` (controller/cli.py builds them
from the flags), else the LLMSCALE_* environment (controller/autoscaling/settings.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from llmscale.api import defaults
from llmscale.controller.autoscaling.loop import ACTIVATION_ANNOTATION, Autoscaler
from llmscale.controller.autoscaling.settings import AutoscalerSettings, add_cli_arguments, settings_from_args

__all__ = ["ACTIVATION_ANNOTATION", "Autoscaler", "add_cli_arguments", "settings_from_args"]

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL
DAEMON_CANCELLATION_SECONDS = 10.0
"""How long a stopping daemon may finish its current decision before kopf cancels it."""


def plain(body: Any) -> dict[str, Any]:
    """A detached copy of what the loop reads of a kopf body (kopf's body is a live view)."""
    return {
        "metadata": dict(body.get("metadata") or {}),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }


@kopf.on.startup()
async def start_autoscaler(memo: kopf.Memo, **_: Any) -> None:
    from llmscale.controller.autoscaling.cluster import KubeAutoscaleCluster
    from llmscale.controller.autoscaling.operator_metrics import OperatorMetrics
    from llmscale.controller.handlers import operator_context
    from llmscale.metrics import MetricsSource
    from llmscale.metrics.prometheus import PrometheusMetricsSource
    from llmscale.metrics.promql import QueryWindows

    settings: AutoscalerSettings = getattr(memo, "autoscaler_settings", None) or AutoscalerSettings.from_env()
    context = operator_context(memo)
    source: MetricsSource = PrometheusMetricsSource(
        settings.prometheus_url, windows=QueryWindows(rate_window_seconds=settings.rate_window_seconds)
    )
    if settings.gateway_metrics_urls:
        from llmscale.metrics.gateway_scrape import GatewayOverlaySource, GatewayScraper

        scraper = GatewayScraper(
            settings.gateway_metrics_urls,
            recent_window_seconds=settings.interval_seconds,
            rate_window_seconds=settings.rate_window_seconds,
        )
        source = GatewayOverlaySource(source, scraper)
    cluster = KubeAutoscaleCluster(context.api, context.reconciles, namespaces=settings.namespaces)
    metrics = OperatorMetrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    memo.autoscaler = Autoscaler(source, cluster, settings, metrics)
    log.info(
        "scaling loop ready: a daemon per LLMDeployment, every %gs, Prometheus %s, "
        "gateway read directly: %s, /metrics on %s",
        settings.interval_seconds,
        settings.prometheus_url,
        ", ".join(settings.gateway_metrics_urls) or "no",
        settings.metrics_port or "off",
    )


@kopf.on.cleanup()
async def stop_autoscaler(memo: kopf.Memo, **_: Any) -> None:
    autoscaler: Autoscaler | None = getattr(memo, "autoscaler", None)
    if autoscaler is not None:
        autoscaler.close()


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=DAEMON_CANCELLATION_SECONDS)
async def scale_llmdeployment(
    stopped: kopf.DaemonStopped, body: kopf.Body, namespace: str | None, name: str, memo: kopf.Memo, **_: Any
) -> None:
    """Decide and apply replicas for this LLMDeployment on every tick until kopf stops us
    (deletion, operator exit, or a peer with higher priority)."""
    autoscaler: Autoscaler = memo.autoscaler
    stop = asyncio.Event()

    async def relay_stop() -> None:
        await stopped.wait()
        stop.set()

    key = (namespace or "default", name)
    relay = asyncio.create_task(relay_stop(), name=f"stop relay {key[0]}/{name}")
    try:
        await autoscaler.serve(key, lambda: plain(body), stop)
    finally:
        relay.cancel()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def activation_signal(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """The gateway's activation annotation reaches the loop at once (the daemon wakes)."""
    autoscaler: Autoscaler | None = getattr(memo, "autoscaler", None)
    meta = body.get("metadata") or {}
    if autoscaler is None or event.get("type") == "DELETED" or meta.get("deletionTimestamp"):
        return
    if (meta.get("annotations") or {}).get(ACTIVATION_ANNOTATION):
        await autoscaler.activate(plain(body))

"""The scaling loop's kopf glue (imported by `llmscale operator`, controller/cli.py).

Importing this module registers:
- a startup handler that builds the loop (Prometheus adapter, Kubernetes I/O, the operator's
  /metrics server) and starts ONE global ticker task (every `interval_seconds`, all
  deployments at once: one Prometheus query per signal per tick, not one per deployment);
- a watch (`on.event`) on LLMDeployments that keeps the loop's registry current and reacts to
  the gateway's `llmscale.dev/activation-requested-at` annotation at once (0 -> 1 without
  waiting for a tick);
- a cleanup handler that stops the ticker.

Settings: `configure(AutoscalerSettings(...))` before kopf starts (controller/cli.py may call it
with `settings_from_args`), else the LLMSCALE_* environment (controller/autoscaling/settings.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from llmscale.controller.autoscaling.loop import ACTIVATION_ANNOTATION, Autoscaler
from llmscale.controller.autoscaling.settings import AutoscalerSettings, add_cli_arguments, settings_from_args

__all__ = ["ACTIVATION_ANNOTATION", "Autoscaler", "add_cli_arguments", "configure", "settings_from_args"]

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL = "llmscale.dev", "v1alpha1", "llmdeployments"

_settings: AutoscalerSettings | None = None
_loop: Autoscaler | None = None
_task: asyncio.Task[None] | None = None
_closers: list[Any] = []


def configure(settings: AutoscalerSettings) -> None:
    global _settings
    _settings = settings


def current() -> Autoscaler | None:
    """The running loop (None before startup)."""
    return _loop


@kopf.on.startup()
async def start_autoscaler(**_: Any) -> None:
    global _loop, _task
    from llmscale.controller.autoscaling.cluster import KubeAutoscaleCluster
    from llmscale.controller.autoscaling.operator_metrics import OperatorMetrics
    from llmscale.controller.handlers import cluster_api
    from llmscale.metrics.prometheus import PrometheusMetricsSource
    from llmscale.metrics.promql import QueryWindows

    settings = _settings or AutoscalerSettings.from_env()
    api = cluster_api()
    source = PrometheusMetricsSource(
        settings.prometheus_url, windows=QueryWindows(rate_window_seconds=settings.rate_window_seconds)
    )
    cluster = KubeAutoscaleCluster(api, api.api_client, namespaces=settings.namespaces)
    metrics = OperatorMetrics()
    if settings.metrics_port:
        metrics.serve(settings.metrics_port, settings.metrics_host)
    _loop = Autoscaler(source, cluster, settings, metrics)
    _closers[:] = [source.close, cluster.close]
    _task = asyncio.create_task(_loop.run(), name="llmscale-autoscaler")
    log.info(
        "scaling loop started: every %gs, Prometheus %s, /metrics on %s",
        settings.interval_seconds,
        settings.prometheus_url,
        settings.metrics_port or "off",
    )


@kopf.on.cleanup()
async def stop_autoscaler(**_: Any) -> None:
    global _task
    if _task is not None:
        _task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await _task
        _task = None
    for close in _closers:
        close()


@kopf.on.event(GROUP, VERSION, PLURAL)
async def watch_llmdeployment(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
    loop = _loop
    if loop is None:
        return
    meta = body.get("metadata") or {}
    if event.get("type") == "DELETED" or meta.get("deletionTimestamp"):
        loop.forget(str(meta.get("namespace") or "default"), str(meta.get("name")))
        return
    plain = {
        "metadata": dict(meta),
        "spec": dict(body.get("spec") or {}),
        "status": dict(body.get("status") or {}),
    }
    loop.observe(plain)
    if (meta.get("annotations") or {}).get(ACTIVATION_ANNOTATION):
        await loop.activate(plain)

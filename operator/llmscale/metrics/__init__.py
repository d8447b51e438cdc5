"""llmscale.metrics: the signals the scaling loop reads, from Prometheus (or a fake in tests).

Public API:
  MetricsSource (Protocol), DeploymentMetrics, DemandHistory, DeploymentKey   (llmscale.metrics.types)
  PrometheusMetricsSource(url, windows=QueryWindows(...), timeout_seconds=...) (llmscale.metrics.prometheus)
  FakeMetricsSource                                                           (llmscale.metrics.fake)
Import the adapter from its module: importing this package stays free of HTTP clients.
"""

from __future__ import annotations

from llmscale.metrics.types import DemandHistory, DeploymentKey, DeploymentMetrics, MetricsSource

__all__ = ["DemandHistory", "DeploymentKey", "DeploymentMetrics", "MetricsSource"]

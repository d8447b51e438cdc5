"""llmscale.metrics: the signals the scaling loop reads, from Prometheus (or a fake in tests).

Public API:
- llmscale.metrics.types: MetricsSource (Protocol), DeploymentMetrics, DemandHistory, DeploymentKey
- llmscale.metrics.prometheus: PrometheusMetricsSource(url, windows=QueryWindows(...), ...)
- llmscale_tools.fakes.metrics: FakeMetricsSource (setters, for tests)
- llmscale.metrics.gateway_scrape: GatewayOverlaySource(inner, GatewayScraper([gateway_url]))
Import the adapter from its module: importing this package stays free of HTTP clients.
"""

from __future__ import annotations

from llmscale.metrics.types import DemandHistory, DeploymentKey, DeploymentMetrics, MetricsSource

__all__ = ["DemandHistory", "DeploymentKey", "DeploymentMetrics", "MetricsSource"]

"""The operator's own /metrics (prometheus_client), one private registry per loop.

Series (labels `namespace`, `llmdeployment` unless noted):
  llmscale_desired_replicas, llmscale_ready_replicas, llmscale_current_replicas
  llmscale_strategy_info{strategy, reason} = 1 for the strategy in force
  llmscale_scaling_decisions_total{reason}       decisions that changed replicas, by reason
  llmscale_scaling_evaluations_total              decisions evaluated by THIS replica (every tick)
  llmscale_scaling_status_writes_total            status patches by this replica's loop
  llmscale_scaling_deployments_served             no labels: LLMDeployments this replica scales
                                                  now (0 on a replica that peering paused)
  llmscale_autoscaler_tick_seconds               histogram, no labels: one whole tick
  llmscale_observed_ttft_p95_seconds, llmscale_observed_itl_p95_seconds
  llmscale_gpu_hours                              GPU-hours since creation (from status.cost)
  llmscale_metrics_available                      1/0, no labels: the last Prometheus read
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LABELS = ("namespace", "llmdeployment")
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.desired = Gauge(
            "llmscale_desired_replicas", "Replicas the scaling loop wants.", LABELS, registry=r
        )
        self.ready = Gauge("llmscale_ready_replicas", "Replicas Ready.", LABELS, registry=r)
        self.current = Gauge(
            "llmscale_current_replicas", "Replicas provisioned (incl. starting).", LABELS, registry=r
        )
        self.strategy = Gauge(
            "llmscale_strategy_info",
            "Concrete strategy in force (value 1).",
            (*LABELS, "strategy", "reason"),
            registry=r,
        )
        self.decisions = Counter(
            "llmscale_scaling_decisions",
            "Scaling decisions that changed replicas.",
            (*LABELS, "reason"),
            registry=r,
        )
        self.evaluations = Counter(
            "llmscale_scaling_evaluations",
            "Scaling decisions evaluated by this operator replica.",
            LABELS,
            registry=r,
        )
        self.status_writes = Counter(
            "llmscale_scaling_status_writes",
            "LLMDeployment status patches written by this replica's scaling loop.",
            LABELS,
            registry=r,
        )
        self.served = Gauge(
            "llmscale_scaling_deployments_served",
            "LLMDeployments this replica scales now (0 while a peer with higher priority is active).",
            registry=r,
        )
        self.tick = Histogram(
            "llmscale_autoscaler_tick_seconds",
            "Duration of one scaling tick.",
            buckets=TICK_BUCKETS,
            registry=r,
        )
        self.ttft = Gauge("llmscale_observed_ttft_p95_seconds", "Measured TTFT p95.", LABELS, registry=r)
        self.itl = Gauge("llmscale_observed_itl_p95_seconds", "Measured ITL p95.", LABELS, registry=r)
        self.gpu_hours = Gauge("llmscale_gpu_hours", "GPU-hours used since creation.", LABELS, registry=r)
        self.metrics_available = Gauge(
            "llmscale_metrics_available", "1 when the last Prometheus read worked.", registry=r
        )
        self._strategy_labels: dict[tuple[str, str], tuple[str, str]] = {}

    def set_strategy(self, namespace: str, name: str, strategy: str, reason: str) -> None:
        previous = self._strategy_labels.get((namespace, name))
        if previous == (strategy, reason):
            return
        if previous is not None:
            self.strategy.remove(namespace, name, *previous)
        self.strategy.labels(namespace, name, strategy, reason).set(1)
        self._strategy_labels[(namespace, name)] = (strategy, reason)

    def forget(self, namespace: str, name: str) -> None:
        """Drop a deleted deployment's series."""
        for gauge in (
            self.desired, self.ready, self.current, self.ttft, self.itl, self.gpu_hours,
            self.evaluations, self.status_writes,
        ):  # fmt: skip
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)
        previous = self._strategy_labels.pop((namespace, name), None)
        if previous is not None:
            self.strategy.remove(namespace, name, *previous)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)

"""The gateway's own Prometheus series (its own registry: several gateways can live in one process).

Labels `namespace` and `llmdeployment` match the vLLM target labels, so the adapter's
`by (namespace, llmdeployment)` queries join them. A scrape without `honor_labels` renames them
`exported_*`; the adapter's PromQL restores them (docs/metrics.md).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from llmscale.gateway.routing import DeploymentKey

LABELS = ("namespace", "llmdeployment")

# seconds: from a few ms (warm replica) to minutes (a cold start of a large model)
HOLD_BUCKETS_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640)
UPSTREAM_BUCKETS_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.arrivals = Counter(
            "llmscale_gateway_arrivals", "Requests that arrived for a known deployment.", LABELS, registry=r
        )
        self.queue_depth = Gauge(
            "llmscale_gateway_queue_depth",
            "Requests held right now waiting for a ready replica.",
            LABELS,
            registry=r,
        )
        self.held = Counter(
            "llmscale_gateway_held_requests",
            "Requests that had to wait for a ready replica.",
            LABELS,
            registry=r,
        )
        self.in_flight = Gauge(
            "llmscale_gateway_in_flight_requests",
            "Requests forwarded and not finished yet.",
            LABELS,
            registry=r,
        )
        self.forwarded = Counter(
            "llmscale_gateway_forwarded_requests",
            "Requests forwarded to a replica, by upstream status code.",
            (*LABELS, "code"),
            registry=r,
        )
        self.rejected = Counter(
            "llmscale_gateway_rejected_requests",
            "Requests the gateway answered itself with an error, by reason.",
            (*LABELS, "reason"),
            registry=r,
        )
        self.activation_signals = Counter(
            "llmscale_gateway_activation_signals",
            "Activation annotations PATCHed on LLMDeployments, by result (ok, error).",
            (*LABELS, "result"),
            registry=r,
        )
        self.unroutable = Counter(
            "llmscale_gateway_unroutable_requests",
            "Requests answered 400 (unusable body) or 404 (unknown model), by reason.",
            ("reason",),
            registry=r,
        )
        self.auth_rejections = Counter(
            "llmscale_gateway_auth_rejections",
            "Requests refused before routing: missing_key and invalid_key (401), forbidden_model (403),"
            " rate_limited (429).",
            ("reason",),
            registry=r,
        )
        for reason in ("missing_key", "invalid_key", "forbidden_model", "rate_limited"):
            self.auth_rejections.labels(reason)
        self.api_keys = Gauge(
            "llmscale_gateway_api_keys",
            "API key Secrets at the last refresh, by state (valid, invalid).",
            ("state",),
            registry=r,
        )
        self.hold_seconds = Histogram(
            "llmscale_gateway_hold_seconds",
            "Time a held request waited for a ready replica.",
            LABELS,
            buckets=HOLD_BUCKETS_SECONDS,
            registry=r,
        )
        self.upstream_latency_seconds = Histogram(
            "llmscale_gateway_upstream_latency_seconds",
            "Time from forwarding to the upstream response headers (TTFT for streams).",
            LABELS,
            buckets=UPSTREAM_BUCKETS_SECONDS,
            registry=r,
        )

    def ensure_series(self, key: DeploymentKey) -> None:
        """Create a deployment's zero-valued series, so that "no arrivals" is a present 0, not absent.

        Absent is "no data", which can never prove idleness; a present 0 can.
        """
        self.arrivals.labels(*key)
        self.queue_depth.labels(*key)
        self.held.labels(*key)
        self.in_flight.labels(*key)

    def render(self) -> bytes:
        return generate_latest(self.registry)

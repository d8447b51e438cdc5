"""What the metrics layer hands to the scaling loop: per-deployment signals and demand history.

A deployment is keyed by `(namespace, llmdeployment name)`, the two Prometheus target labels the
local cluster (and the Helm chart's PodMonitor) attach to every vLLM and gateway series.

Every signal is `float | None`. `None` means "not usable now", and the `missing` set says which
of those were *absent or invalid* in Prometheus ("no data"). A latency quantile can be `None`
without being missing: the histogram exists but saw no observation in the window ("no traffic").
The scaling core must tell the two apart: "no traffic" is part of a positive proof of idleness,
"no data" never is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Protocol, runtime_checkable

DeploymentKey = tuple[str, str]
"""(namespace, LLMDeployment name)."""

# Names of the per-tick signals, in the order the adapter queries them.
SIGNAL_NAMES: tuple[str, ...] = (
    "request_rate_rps",
    "prompt_tokens_per_second",
    "generation_tokens_per_second",
    "num_requests_waiting",
    "num_requests_running",
    "kv_cache_usage",
    "ttft_p95_seconds",
    "itl_p95_seconds",
    "queue_time_p95_seconds",
    "gateway_arrivals_rps",
    "gateway_queue_depth",
)

QUANTILE_SIGNALS: frozenset[str] = frozenset(
    {"ttft_p95_seconds", "itl_p95_seconds", "queue_time_p95_seconds"}
)
ENGINE_SIGNALS: frozenset[str] = frozenset(SIGNAL_NAMES[:9])
GATEWAY_SIGNALS: frozenset[str] = frozenset({"gateway_arrivals_rps", "gateway_queue_depth"})


@dataclass(frozen=True)
class DeploymentMetrics:
    """One deployment's signals at one instant (rates and quantiles over the adapter's window)."""

    namespace: str
    name: str
    # completed requests per second (vllm:request_success_total), summed over replicas
    request_rate_rps: float | None = None
    prompt_tokens_per_second: float | None = None
    generation_tokens_per_second: float | None = None
    # engine queue (waiting) and batch (running) sizes, summed over replicas
    num_requests_waiting: float | None = None
    num_requests_running: float | None = None
    # KV-cache usage as a fraction 0..1, averaged over replicas
    kv_cache_usage: float | None = None
    ttft_p95_seconds: float | None = None
    itl_p95_seconds: float | None = None
    queue_time_p95_seconds: float | None = None
    # the gateway's own view: requests arriving per second, and requests held right now
    gateway_arrivals_rps: float | None = None
    gateway_queue_depth: float | None = None
    # arrivals per second since the previous direct read of the gateways' /metrics (one decision
    # interval; `GatewayOverlaySource`): the panic window's signal. None without a direct read.
    gateway_recent_arrivals_rps: float | None = None
    # signals with no usable series in Prometheus ("no data", as opposed to "no traffic")
    missing: frozenset[str] = field(default_factory=frozenset)

    @property
    def key(self) -> DeploymentKey:
        return (self.namespace, self.name)

    @property
    def engine_reporting(self) -> bool:
        """True when at least one engine gauge or counter is present (a replica is being scraped)."""
        return any(name not in self.missing for name in ENGINE_SIGNALS - QUANTILE_SIGNALS)

    @property
    def proves_idle(self) -> bool:
        """Positive proof of idleness: every demand signal is *present* and zero.

        Engine rates and queues must be present and zero, and the gateway must report zero
        arrivals and an empty queue. Missing data is never proof: the caller holds replicas.
        """
        demand = (
            "request_rate_rps",
            "num_requests_waiting",
            "num_requests_running",
            "gateway_arrivals_rps",
            "gateway_queue_depth",
        )
        for name in demand:
            value = getattr(self, name)
            if value is None or value > 0.0:
                return False
        return True

    @classmethod
    def empty(cls, namespace: str, name: str) -> DeploymentMetrics:
        """A deployment Prometheus knows nothing about: every signal missing."""
        return cls(namespace=namespace, name=name, missing=frozenset(SIGNAL_NAMES))

    @classmethod
    def from_signals(
        cls, namespace: str, name: str, values: Mapping[str, float | None], missing: frozenset[str]
    ) -> DeploymentMetrics:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown signal names: {sorted(unknown)}")
        return cls(namespace=namespace, name=name, missing=missing, **dict(values))


@dataclass(frozen=True)
class DemandHistory:
    """Demand of one deployment on a regular time grid (for forecasters to learn from).

    `timestamps_seconds` are Unix seconds, `step_seconds` apart. Each series has one entry per
    timestamp; `None` marks a gap (no sample: Prometheus down, deployment absent, or at zero
    replicas with no gateway series).
    """

    namespace: str
    name: str
    step_seconds: float
    timestamps_seconds: tuple[float, ...]
    request_rate_rps: tuple[float | None, ...]
    prompt_tokens_per_second: tuple[float | None, ...]
    generation_tokens_per_second: tuple[float | None, ...]
    gateway_arrivals_rps: tuple[float | None, ...]

    @property
    def key(self) -> DeploymentKey:
        return (self.namespace, self.name)

    def demand_rps(self) -> tuple[float | None, ...]:
        """Best demand estimate per point: gateway arrivals where known, else completed requests.

        Arrivals count requests the engine never saw (held at zero, rejected); completions lag
        arrivals by one request latency but exist when the gateway was not scraped.
        """
        return tuple(
            arrivals if arrivals is not None else completed
            for arrivals, completed in zip(self.gateway_arrivals_rps, self.request_rate_rps, strict=True)
        )


@runtime_checkable
class MetricsSource(Protocol):
    """Where the scaling loop reads its signals from (Prometheus in production, a fake in tests)."""

    async def fetch_current(self, now_seconds: float) -> dict[DeploymentKey, DeploymentMetrics]:
        """Signals for every deployment Prometheus has series for, evaluated at `now_seconds`.

        A deployment absent from the result has no data at all (use `DeploymentMetrics.empty`).
        Raises `MetricsUnavailableError` when Prometheus cannot be queried.
        """
        ...

    async def fetch_history(
        self, start_seconds: float, end_seconds: float, step_seconds: float
    ) -> dict[DeploymentKey, DemandHistory]:
        """Demand history on the grid `start_seconds, start+step, ..., <= end_seconds`."""
        ...


@runtime_checkable
class GatewayReader(Protocol):
    """A source that can read the gateways without Prometheus (`GatewayOverlaySource`)."""

    async def fetch_gateway_only(self, now_seconds: float) -> dict[DeploymentKey, DeploymentMetrics]:
        """Gateway signals only (every engine signal missing); {} when no gateway can be read."""
        ...

"""Pure helpers of the scaling loop: metrics -> `DecisionInputs` (the gather step), status.

Availability rules (docs/autoscaling.md, "Metrics"): a deployment's metrics are usable when
Prometheus answered and
- with a Ready replica: the engines report (their gauges/counters are present);
- with no Ready replica: the gateway's series are present (at zero the engines export nothing
  by design, so the gateway's counts are the whole demand signal).
Anything else is "no data": the core holds replicas. The demand signals Prometheus had no series
for travel as `DecisionInputs.missing_demand_signals`: the core's idle guard never lowers replicas
to zero unless every one is present and zero, gateway included (a missing gateway series is never
taken as "no arrivals"). Nothing is decided here: the loop applies `decide`'s answer verbatim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llmscale.metrics import DeploymentMetrics
from llmscale.metrics.types import GATEWAY_SIGNALS
from llmscale.scaling import DecisionInputs
from llmscale.scaling.core import IDLE_PROOF_SIGNALS
from llmscale.scaling.core import metrics_usable as metrics_usable_rule
from llmscale.timestamps import rfc3339


@dataclass(frozen=True)
class WorkloadSnapshot:
    """The Deployment behind an LLMDeployment, as the loop sees it at the start of a tick."""

    replicas: int
    """Deployment spec.replicas (provisioned, incl. starting)."""
    ready_replicas: int
    pods: tuple[dict[str, Any], ...] = ()


def _value(value: float | None) -> float:
    return 0.0 if value is None or not math.isfinite(value) else float(value)


def metrics_usable(metrics: DeploymentMetrics | None, ready_replicas: int) -> tuple[bool, str, str]:
    """(usable, reason, message) for the MetricsAvailable condition of one deployment."""
    if metrics is None:
        return False, "NoData", "Prometheus has no series for this deployment"
    gateway_reporting = not metrics.missing & GATEWAY_SIGNALS
    if metrics_usable_rule(
        ready_replicas, engine_reporting=metrics.engine_reporting, gateway_reporting=gateway_reporting
    ):
        return True, "MetricsAvailable", "engine and gateway signals present"
    if ready_replicas > 0:
        return False, "NoEngineData", f"{ready_replicas} replica(s) Ready but no engine metrics in Prometheus"
    return False, "NoGatewayData", "no replica Ready and the gateway's series are missing"


def _recent(metrics: DeploymentMetrics | None) -> float | None:
    """The direct gateway read's arrivals over the last interval (None without one)."""
    if metrics is None or metrics.gateway_recent_arrivals_rps is None:
        return None
    return _value(metrics.gateway_recent_arrivals_rps)


def build_inputs(
    metrics: DeploymentMetrics | None,
    workload: WorkloadSnapshot,
    *,
    prometheus_ok: bool,
    cold_start_p50_seconds: float | None,
    cold_start_p95_seconds: float | None,
    activation_requested: bool,
) -> DecisionInputs:
    usable = prometheus_ok and metrics_usable(metrics, workload.ready_replicas)[0]
    # While Prometheus does not answer, `metrics` is what the gateways said directly (every
    # engine signal missing) or None: never usable, but the gateway's counts are still data.
    m = metrics
    gateway_arrivals = None
    queue_depth = 0
    if m is not None and "gateway_arrivals_rps" not in m.missing:
        gateway_arrivals = _value(m.gateway_arrivals_rps)
    if m is not None:
        queue_depth = round(_value(m.gateway_queue_depth))
    missing = (
        IDLE_PROOF_SIGNALS
        if m is None
        else {name for name in IDLE_PROOF_SIGNALS if name in m.missing or getattr(m, name) is None}
    )
    return DecisionInputs(
        current_replicas=workload.replicas,
        ready_replicas=workload.ready_replicas,
        request_rate_rps=_value(m.request_rate_rps) if m else 0.0,
        prompt_tokens_per_second=_value(m.prompt_tokens_per_second) if m else 0.0,
        generation_tokens_per_second=_value(m.generation_tokens_per_second) if m else 0.0,
        num_requests_waiting=_value(m.num_requests_waiting) if m else 0.0,
        num_requests_running=_value(m.num_requests_running) if m else 0.0,
        kv_cache_usage=m.kv_cache_usage if m else None,
        ttft_p95_seconds=m.ttft_p95_seconds if m else None,
        itl_p95_seconds=m.itl_p95_seconds if m else None,
        gateway_arrivals_rps=gateway_arrivals,
        gateway_queue_depth=queue_depth,
        gateway_recent_arrivals_rps=_recent(m),
        metrics_available=usable,
        cold_start_p50_seconds=cold_start_p50_seconds,
        cold_start_p95_seconds=cold_start_p95_seconds,
        activation_requested=activation_requested,
        missing_demand_signals=frozenset(missing),
    )


def observed_status(
    metrics: DeploymentMetrics | None, inputs: DecisionInputs, slo_attainment: float | None
) -> dict[str, Any]:
    def rounded(value: float | None) -> float | None:
        return None if value is None or not math.isfinite(value) else round(value, 4)

    rps = max(inputs.request_rate_rps, inputs.gateway_arrivals_rps or 0.0)
    return {
        "ttftP95Seconds": rounded(metrics.ttft_p95_seconds) if metrics else None,
        "itlP95Seconds": rounded(metrics.itl_p95_seconds) if metrics else None,
        "requestsPerSecond": round(rps, 4),
        "sloAttainment": rounded(slo_attainment),
    }


def condition(
    type_: str, status: bool, reason: str, message: str, now: float, generation: Any
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message[:1000],
        "lastTransitionTime": rfc3339(now),
        "observedGeneration": generation if isinstance(generation, int) else None,
    }

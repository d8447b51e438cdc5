"""Per-policy results of a fleet simulation: SLO attainment, latency, cost, scaling activity.

`slo_attainment` is the fraction of ALL requests of the trace that met the latency SLO:
time to first token <= the TTFT target (and, when an ITL target is given, the request's
inter-token latency <= that target). Failed requests (gateway timeout or overflow, or still
unserved when the simulation ends) count as misses. `ttft_p95_s` is over served requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from llmscale.sim.traces import Trace

if TYPE_CHECKING:
    from llmscale.sim.fleet import FleetConfig


@dataclass(frozen=True)
class PolicyResult:
    name: str
    requests: int
    slo_attainment: float
    ttft_p95_s: float | None
    gpu_hours: float
    cold_starts: int
    scale_events: int
    failed_requests: int
    rejected_requests: int = (
        0  # HTTP 400 (prompt beyond max_model_len): the client's error, same under every policy
    )
    ttft_p50_s: float | None = None
    cost_usd: float = 0.0
    series: dict[str, list[float]] = field(default_factory=dict)  # time, arrival_rps, replicas, ready
    parameters: dict[str, float] = field(default_factory=dict)  # what a search chose (tuned, oracle)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slo_attainment": round(self.slo_attainment, 6),
            "ttft_p95_s": None if self.ttft_p95_s is None else round(self.ttft_p95_s, 6),
            "gpu_hours": round(self.gpu_hours, 6),
            "cold_starts": self.cold_starts,
            "scale_events": self.scale_events,
            "failed_requests": self.failed_requests,
            "rejected_requests": self.rejected_requests,
            "requests": self.requests,
            "ttft_p50_s": None if self.ttft_p50_s is None else round(self.ttft_p50_s, 6),
            "cost_usd": round(self.cost_usd, 4),
            "parameters": self.parameters,
        }


def build_result(
    name: str,
    trace: Trace,
    config: FleetConfig,
    ttft: npt.NDArray[np.float64],
    itl: npt.NDArray[np.float64],
    failed: npt.NDArray[np.bool_],
    gpu_seconds: float,
    cold_starts: int,
    scale_events: int,
    series: dict[str, list[float]],
    rejected: npt.NDArray[np.bool_] | None = None,
) -> PolicyResult:
    """`failed` marks every request that got no answer; `rejected` the subset vLLM answers 400
    (the prompt leaves no room in max_model_len). Both count as SLO misses; only the rest are
    `failed_requests` (held past the timeout, queue overflow, unserved at the end): the
    failures a scaling policy causes."""
    count = len(trace)
    rejected_mask = np.zeros(count, dtype=bool) if rejected is None else rejected
    served = ~failed & ~np.isnan(ttft)
    met = served & (ttft <= config.slo_ttft_p95_seconds)
    if config.slo_itl_p95_seconds is not None:
        met &= itl <= config.slo_itl_p95_seconds
    served_ttft = ttft[served]
    gpu_hours = gpu_seconds / 3600.0
    return PolicyResult(
        name=name,
        requests=count,
        slo_attainment=float(met.sum()) / count if count else 1.0,
        ttft_p95_s=float(np.percentile(served_ttft, 95)) if len(served_ttft) else None,
        gpu_hours=gpu_hours,
        cold_starts=cold_starts,
        scale_events=scale_events,
        failed_requests=int((failed & ~rejected_mask).sum()),
        rejected_requests=int(rejected_mask.sum()),
        ttft_p50_s=float(np.percentile(served_ttft, 50)) if len(served_ttft) else None,
        cost_usd=gpu_hours * config.model.gpu_price_per_hour_usd,
        series=series,
    )

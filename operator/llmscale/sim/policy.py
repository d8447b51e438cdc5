"""The contract between the fleet simulator and a scaling policy.

Every `tick_seconds` of simulated time the simulator builds one `FleetObservation` and asks
the policy for the desired number of replicas. Engine and gateway series are what Prometheus
would return at that moment (`llmscale.sim.observe.PrometheusModel`: scrape intervals, rate
window, evaluation lag). Only `gateway_arrivals_last_tick` (the wake signal the gateway hands
over directly) and `gateway_queue_now` are immediate. Before the first tick the simulator calls
`prepare` once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from llmscale.sim.perfmodel import ReplicaPerformanceModel


@dataclass(frozen=True)
class FleetObservation:
    now: float  # simulated seconds since the start of the trace
    current_replicas: int  # provisioned, including starting ones (not draining ones)
    ready_replicas: int
    request_rate_rps: float  # rate(vllm:request_success[window]) summed over replicas
    prompt_tokens_rate: float  # rate(vllm:prompt_tokens[window]), tokens/s
    generation_tokens_rate: float  # rate(vllm:generation_tokens[window]), tokens/s
    num_requests_waiting: float  # sum over replicas at the last scrape
    num_requests_running: float  # sum over replicas at the last scrape
    kv_cache_usage: float  # mean over ready replicas at the last scrape, 0..1
    ttft_p95_seconds: float | None  # histogram_quantile over the window; None if no data
    itl_p95_seconds: float | None  # histogram_quantile over the window; None if no data
    gateway_arrivals_rps: float  # rate(llmscale_gateway_arrivals_total[window]) via Prometheus
    gateway_queue_depth: int  # llmscale_gateway_queue_depth at the gateway's last scrape
    metrics_available: bool  # the operator's rule: engine series when Ready replicas, else the gateway's
    cold_start_p50_seconds: float | None  # measured creation -> Ready; None until observed
    cold_start_p95_seconds: float | None
    gateway_reporting: bool = True  # False: Prometheus has no gateway series (outage, scrape gap)
    gateway_arrivals_last_tick: int = 0  # arrivals since the previous tick (the wake signal; immediate)
    engine_metrics_available: bool = False  # engine series in Prometheus (>= 2 samples in the window)
    gateway_metrics_available: bool = False  # gateway series in Prometheus (>= 2 samples in the window)
    engine_sample_seconds: float | None = None  # time of the engine scrape the gauges come from
    gateway_queue_now: int = 0  # requests the gateway holds now (what an activator sees itself)
    prometheus_answered: bool = True  # False: the operator's read failed (an outage; the fleet models none)


@dataclass(frozen=True)
class TraceSummary:
    """What an omniscient policy (warm, oracle) may know about the whole trace."""

    arrival_seconds: npt.NDArray[np.float64]
    input_tokens: npt.NDArray[np.int64]
    output_tokens: npt.NDArray[np.int64]
    duration_seconds: float


@dataclass(frozen=True)
class SimContext:
    model: ReplicaPerformanceModel  # the replica (model, GPU, tensor parallel size)
    slo_ttft_p95_seconds: float
    slo_itl_p95_seconds: float | None
    slo_objective: float  # fraction of requests that must meet the SLO, e.g. 0.99
    cold_start_seconds: float  # what the simulator uses (a policy should learn it from observations)
    gpu_price_per_hour_usd: float  # of one GPU
    min_replicas: int
    max_replicas: int
    # Requests/s one replica serves within the SLO at the documented prior request lengths
    # (llmscale.sim.capacity): the planner's figure, never one fitted to the trace.
    replica_capacity_rps: float
    mean_input_tokens: float  # the prior prompt length (not the trace's mean)
    mean_output_tokens: float  # the prior output length (not the trace's mean)
    trace: TraceSummary | None = None  # given only to policies that declare needs_trace = True


@runtime_checkable
class SimPolicy(Protocol):
    name: str
    tick_seconds: float

    def prepare(self, context: SimContext) -> None: ...

    def decide(self, observation: FleetObservation) -> int: ...

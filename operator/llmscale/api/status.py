"""`LLMDeployment.status`: every field, whichever component writes it.

Reconcile (controller) writes replicas, readyReplicas, desiredReplicas, strategy, endpoint,
observedGeneration, selector, plan and the conditions Ready and ModelFits. The autoscaling loop
(controller/autoscaling/handlers.py) writes desiredReplicas for loop-owned strategies, strategyReason,
forecast, observed, coldStart, cost, lastDecisions, scalerState and the conditions
MetricsAvailable and ScalingActive.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Field

from llmscale.api.base import ApiModel

ConditionType = Literal["Ready", "ModelFits", "MetricsAvailable", "ScalingActive"]
CONDITION_TYPES: Final[tuple[str, ...]] = ConditionType.__args__  # type: ignore[attr-defined]
ConditionStatus = Literal["True", "False", "Unknown"]
MAX_LAST_DECISIONS: Final = 10


class StatusModel(ApiModel):
    # Status written by a newer operator must still parse in an older one: ignore unknown keys.
    model_config = ApiModel.model_config | ConfigDict(extra="ignore")


class Condition(StatusModel):
    type: ConditionType = Field(description="Condition type.", examples=["Ready"])
    status: ConditionStatus = Field(description="True, False or Unknown.", examples=["True"])
    reason: str = Field(description="CamelCase reason, also used in Events.", examples=["ReplicasReady"])
    message: str = Field(
        default="", description="Human-readable detail, with numbers.", examples=["2/2 ready"]
    )
    last_transition_time: str | None = Field(
        default=None,
        description="When status last changed (RFC 3339 UTC).",
        examples=["2026-01-01T12:00:00Z"],
    )
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the condition was computed from.", examples=[3]
    )


class PlanStatus(StatusModel):
    """The planner's result for the spec (the keys of `llmscale plan --json`, camelCased)."""

    model_config = StatusModel.model_config | ConfigDict(extra="allow")

    fits: bool | None = Field(default=None, description="Whether one replica fits its GPUs.", examples=[True])
    gpu: str | None = Field(default=None, description="GPU catalog name planned for.", examples=["H100-80GB"])
    tensor_parallel_size: int | None = Field(
        default=None, description="Tensor-parallel size: GPUs per node of one model copy.", examples=[1]
    )
    pipeline_parallel_size: int | None = Field(
        default=None, description="Pipeline stages, one per node (1 on a single node).", examples=[2]
    )
    nodes_per_replica: int | None = Field(
        default=None,
        description="Nodes one replica spans; above 1 a replica is a LeaderWorkerSet group.",
        examples=[2],
    )
    gpus_per_node: int | None = Field(
        default=None, description="GPUs each pod of a replica requests.", examples=[8]
    )
    gpus: int | None = Field(
        default=None, description="All GPUs of one replica (GPUs per node x nodes).", examples=[16]
    )
    weights_gib: float | None = Field(
        default=None, description="Weights of the whole model, GiB.", examples=[15.0]
    )
    kv_bytes_per_token: int | None = Field(
        default=None,
        description="KV cache of one token across all layers and GPUs, bytes.",
        examples=[131072],
    )
    kv_cache_tokens: int | None = Field(
        default=None, description="KV capacity of one replica, tokens.", examples=[450000]
    )
    max_concurrent_sequences: int | None = Field(
        default=None, description="Full-length sequences that fit at once.", examples=[54]
    )
    max_model_len: int | None = Field(
        default=None, description="Context length planned, tokens.", examples=[8192]
    )
    itl_floor_seconds: float | None = Field(
        default=None,
        description="Inter-token latency floor (weights / HBM bandwidth), seconds.",
        examples=[0.005],
    )
    gpu_cost_per_hour: float | None = Field(
        default=None, description="GPU cost of one replica, USD per hour.", examples=[2.49]
    )
    reason: str | None = Field(default=None, description="Why it does not fit.", examples=["needs 140 GiB"])


class ForecastStatus(StatusModel):
    requests_per_second: float | None = Field(
        default=None, description="Forecast demand at the horizon, requests/s.", examples=[3.2]
    )
    upper: float | None = Field(
        default=None, description="Upper bound of the forecast, requests/s.", examples=[4.1]
    )
    horizon_seconds: float | None = Field(
        default=None, description="How far ahead (the measured cold start), seconds.", examples=[90]
    )
    lower: float | None = Field(
        default=None,
        description="Lower end of the nominal 90 % interval (upper is its other end), requests/s.",
        examples=[2.4],
    )
    model: str | None = Field(
        default=None,
        description="Forecast model in use: persistence, holt, smooth60, smooth300, period300..period3600 "
        "(sub-daily recurring pattern) or daily.",
        examples=["period3600"],
    )
    reason: str | None = Field(
        default=None,
        description="Why that model: ForecastModelSelected (beats persistence at the horizon on this "
        "deployment's outcomes), ForecastPersistence (nothing does: falls back) or ForecastLearning.",
        examples=["ForecastPersistence"],
    )


class ObservedStatus(StatusModel):
    ttft_p95_seconds: float | None = Field(
        default=None, description="Measured TTFT p95, seconds.", examples=[0.4]
    )
    itl_p95_seconds: float | None = Field(
        default=None, description="Measured ITL p95, seconds.", examples=[0.03]
    )
    requests_per_second: float | None = Field(
        default=None, description="Measured demand, requests/s.", examples=[2.5]
    )
    slo_attainment: float | None = Field(
        default=None, description="Fraction (0-1) of recent requests meeting the SLO.", examples=[0.995]
    )


class ColdStartStatus(StatusModel):
    p50_seconds: float | None = Field(
        default=None, description="Median pod creation -> Ready, seconds.", examples=[75]
    )
    p95_seconds: float | None = Field(default=None, description="95th percentile, seconds.", examples=[110])
    samples: int | None = Field(default=None, description="Cold starts measured.", examples=[12])


class CostStatus(StatusModel):
    gpu_hours: float | None = Field(
        default=None, description="GPU-hours used since creation.", examples=[12.5]
    )
    dollars_per_hour: float | None = Field(
        default=None, description="Current spend, USD/hour.", examples=[4.98]
    )
    gpu_hours_saved_vs_always_on: float | None = Field(
        default=None, description="GPU-hours saved versus maxReplicas always on.", examples=[30.0]
    )


class DecisionRecord(StatusModel):
    time: str = Field(description="Decision time (RFC 3339 UTC).", examples=["2026-01-01T12:00:00Z"])
    replicas: int | None = Field(default=None, description="Replicas before the decision.", examples=[1])
    desired_replicas: int | None = Field(default=None, description="Replicas decided.", examples=[2])
    strategy: str | None = Field(
        default=None, description="Concrete strategy in force.", examples=["Autoscaled"]
    )
    reason: str | None = Field(default=None, description="CamelCase reason.", examples=["DemandRising"])
    message: str | None = Field(
        default=None, description="Detail with numbers.", examples=["forecast 4.1 rps"]
    )


class LLMDeploymentStatus(StatusModel):
    replicas: int | None = Field(
        default=None, description="Pods of the Deployment (incl. starting).", examples=[2]
    )
    ready_replicas: int | None = Field(default=None, description="Pods ready to serve.", examples=[2])
    desired_replicas: int | None = Field(
        default=None,
        description="Replicas the operator wants; for Auto, Autoscaled and ScaleToZero the scaling"
        " loop writes it.",
        examples=[2],
    )
    nodes_per_replica: int | None = Field(
        default=None,
        description="Nodes (pods) per replica: 1 for a Deployment, the group size of a LeaderWorkerSet"
        " for a multi-node replica (replicas count groups).",
        examples=[2],
    )
    strategy: str | None = Field(
        default=None,
        description="Concrete strategy in force (Warm, Autoscaled or ScaleToZero).",
        examples=["Warm"],
    )
    strategy_reason: str | None = Field(
        default=None, description="Why Auto picked that strategy (CamelCase).", examples=["SteadyDemand"]
    )
    endpoint: str | None = Field(
        default=None,
        description="In-cluster URL of the OpenAI-compatible API.",
        examples=["http://llama.default.svc:8000/v1"],
    )
    observed_generation: int | None = Field(
        default=None, description="metadata.generation last reconciled.", examples=[3]
    )
    selector: str | None = Field(
        default=None,
        description="Label selector of the pods (for the /scale subresource).",
        examples=["llmscale.dev/deployment=llama"],
    )
    conditions: Annotated[list[Condition], Field(max_length=8)] | None = Field(
        default=None, description="Ready, ModelFits, MetricsAvailable, ScalingActive.", examples=[[]]
    )
    plan: PlanStatus | None = Field(default=None, description="Planner result for the spec.", examples=[{}])
    forecast: ForecastStatus | None = Field(default=None, description="Demand forecast.", examples=[{}])
    observed: ObservedStatus | None = Field(
        default=None, description="Measured latency and demand.", examples=[{}]
    )
    cold_start: ColdStartStatus | None = Field(
        default=None, description="Measured cold starts.", examples=[{}]
    )
    cost: CostStatus | None = Field(default=None, description="GPU usage and spend.", examples=[{}])
    last_decisions: Annotated[list[DecisionRecord], Field(max_length=MAX_LAST_DECISIONS)] | None = Field(
        default=None, description="Latest scaling decisions, newest last (at most 10).", examples=[[]]
    )
    scaler_state: dict[str, Any] | None = Field(
        default=None,
        description="Opaque state of the scaling loop, kept here so an operator restart does not flap.",
        examples=[{}],
    )

    def condition(self, condition_type: str) -> Condition | None:
        for condition in self.conditions or ():
            if condition.type == condition_type:
                return condition
        return None

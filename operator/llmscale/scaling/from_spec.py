"""`policy_from_spec`: the ONE translation from an LLMDeployment to the decision core's policy.

The operator (controller/autoscaling/policy.py) and `llmscale simulate` (sim/llmscale_policy.py)
both call it, so what a backtest runs is what the cluster runs:

- strategy, bounds, SLO, DryRun and the GPU price come from the pydantic spec (its defaults are
  `llmscale.api.defaults`);
- capacity comes from the replica performance model (`llmscale.planner.perfmodel`) of that model
  on that GPU, tensor-parallel size, quantisation and context length, at the documented constant
  request lengths `defaults.PRIOR_PROMPT_TOKENS` / `PRIOR_GENERATION_TOKENS` (never a trace's own
  means: a deployment cannot know its future traffic). `spec.scaling.capacityHint` replaces the
  target utilisation. A model the catalog does not know keeps the defaults' capacity (the core
  refines it online from measured TTFT);
- the decision interval and the operator-wide overrides come from `PolicySettings`, then the
  per-deployment annotation `llmscale.dev/scaling-overrides` (`policy_for_resource`).

Pure: no I/O (the model is looked up in the catalog only, never read from disk).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llmscale.api import LLMDeployment, LLMDeploymentSpec, defaults
from llmscale.errors import LLMScaleError, UserInputError
from llmscale.planner import ModelArchitecture, get_gpu
from llmscale.planner.catalog import KNOWN_MODELS, lookup_known_model
from llmscale.planner.perfmodel import ReplicaPerformanceModel, capacity_prior
from llmscale.resources.fit import PLANNER_QUANTIZATION
from llmscale.scaling.types import ScalingPolicy, Strategy

OVERRIDES_ANNOTATION = "llmscale.dev/scaling-overrides"
"""Per-deployment JSON object of ScalingPolicy fields (seconds), e.g. {"scale_down_delay_seconds": 20}."""

# ScalingPolicy fields that may be tuned per operator or per deployment. The rest come from the
# spec, and the decision interval from the operator's settings alone (one interval drives both
# the operator's tick and the core: a per-deployment value could not be honoured by one ticker).
TUNABLE_FIELDS: frozenset[str] = frozenset(
    f.name
    for f in dataclasses.fields(ScalingPolicy)
    if f.name
    not in {
        "strategy",
        "min_replicas",
        "max_replicas",
        "slo_ttft_p95_seconds",
        "slo_itl_p95_seconds",
        "slo_objective",
        "gpu_price_per_hour_usd",
        "gpus_per_replica",
        "dry_run",
        "decision_interval_seconds",
    }
)


@dataclass(frozen=True)
class PolicySettings:
    """What the operator (or `llmscale simulate`) adds to every deployment's spec."""

    decision_interval_seconds: float = defaults.DECISION_INTERVAL_SECONDS
    """Seconds between decisions: the operator's tick (`--scaling-interval`), the simulator's tick."""
    overrides: Mapping[str, float] = field(default_factory=dict)
    """Tunable ScalingPolicy fields for every deployment (`--scaling-overrides`)."""
    gpu_prices: Mapping[str, float] = field(default_factory=dict)
    """USD per GPU-hour by catalog name, over the catalog's list prices (spec.gpuPricePerHour wins)."""
    gateway_read_directly: bool = True
    """The operator reads the gateways' /metrics on every tick (`--gateway-metrics-url`, which the
    chart sets): the queue depth now and the arrivals of the last interval reach the core without
    Prometheus' scrape and rate window. The policy itself does not depend on it; the simulator
    models the inputs the operator then has. True is the chart's deployment; the operator without
    a gateway URL says False."""

    def __post_init__(self) -> None:
        value = self.decision_interval_seconds
        if not (value > 0 and math.isfinite(value)):
            raise UserInputError(f"decision_interval_seconds: value {value!r} must be a positive number")
        validate_overrides(self.overrides, "--scaling-overrides")


def performance_model(spec: LLMDeploymentSpec) -> ReplicaPerformanceModel | None:
    """The replica performance model of the spec's model, GPU, tensor parallel size, quantisation
    and context length; None when the catalog does not know the model or it does not fit."""
    engine = spec.engine
    return _performance_model(
        spec.model.name,
        _inline_architecture(spec.model.architecture),
        spec.resources.gpu.product,
        spec.resources.gpu.count or engine.tensor_parallel_size,
        engine.quantization,
        engine.max_model_len,
        engine.gpu_memory_utilization,
        spec.resources.max_nodes_per_replica,
    )


def policy_from_spec(spec: LLMDeploymentSpec, settings: PolicySettings) -> ScalingPolicy:
    """The ScalingPolicy of one LLMDeployment spec (the operator's and the simulator's alike)."""
    scaling = spec.scaling
    engine = spec.engine
    model = performance_model(spec)
    fields: dict[str, Any] = {}
    gpus = spec.resources.gpu.count or engine.tensor_parallel_size or defaults.GPU_COUNT_WHEN_UNPLANNED
    if model is not None:
        fields.update(capacity_prior(model, replica_capacity_rps=scaling.capacity_hint))
        fields["cold_start_seconds"] = model.cold_start_seconds
        # a multi-node replica (LeaderWorkerSet group) pays for every node's GPUs
        gpus = (spec.resources.gpu.count or model.tensor_parallel_size) * model.pipeline_parallel_size
    fields.update(
        strategy=Strategy(scaling.strategy),
        min_replicas=scaling.effective_min_replicas,
        max_replicas=max(scaling.max_replicas, 1, scaling.effective_min_replicas),
        slo_ttft_p95_seconds=scaling.slo.ttft_p95_seconds,
        slo_itl_p95_seconds=scaling.slo.itl_p95_seconds,
        slo_objective=scaling.slo.objective,
        gpu_price_per_hour_usd=gpu_price_per_hour(spec, settings.gpu_prices),
        gpus_per_replica=gpus,
        dry_run=scaling.mode == "DryRun",
        decision_interval_seconds=settings.decision_interval_seconds,
    )
    fields.update(settings.overrides)
    return dataclasses.replace(ScalingPolicy(), **fields)


def policy_for_resource(resource: LLMDeployment, settings: PolicySettings) -> ScalingPolicy:
    """`policy_from_spec` plus the resource's `llmscale.dev/scaling-overrides` annotation (it wins
    over the settings' overrides). Raises UserInputError naming the annotation on a bad value."""
    annotation = (resource.metadata.annotations or {}).get(OVERRIDES_ANNOTATION)
    if annotation:
        merged = dict(settings.overrides) | parse_overrides(annotation, f"annotation {OVERRIDES_ANNOTATION}")
        settings = dataclasses.replace(settings, overrides=merged)
    return policy_from_spec(resource.spec, settings)


def gpu_price_per_hour(spec: LLMDeploymentSpec, operator_prices: Mapping[str, float]) -> float:
    """spec.gpuPricePerHour, else the operator's price list (chart values.gpuPrices), else the catalog."""
    if spec.gpu_price_per_hour is not None:
        return float(spec.gpu_price_per_hour)
    product = spec.resources.gpu.product
    if product in operator_prices:
        return float(operator_prices[product])
    return _catalog_price_per_hour(product)


@functools.lru_cache(maxsize=64)
def _catalog_price_per_hour(product: str) -> float:
    try:
        return float(get_gpu(product).price_per_hour_usd)
    except LLMScaleError:
        return defaults.GPU_PRICE_PER_HOUR_USD


def _inline_architecture(config: Mapping[str, Any] | None) -> str | None:
    """spec.model.architecture as a hashable key for the cache (None when unset)."""
    return None if config is None else json.dumps(config, sort_keys=True)


@functools.lru_cache(maxsize=256)
def _performance_model(
    name: str,
    architecture_json: str | None,
    gpu: str,
    gpus: int | None,
    quantization: str | None,
    max_model_len: int | None,
    gpu_memory_utilization: float,
    max_nodes: int = defaults.MAX_NODES_PER_REPLICA,
) -> ReplicaPerformanceModel | None:
    """The replica performance model, or None when the model is unknown or does not fit (the
    controller reports that as the ModelFits condition; the policy then keeps default capacity)."""
    source: ModelArchitecture | None = None
    try:
        if architecture_json is not None:
            source = ModelArchitecture.from_hf_config(json.loads(architecture_json), name=name, source=name)
        else:
            known = lookup_known_model(name)
            if known is not None:
                source = ModelArchitecture.from_hf_config(KNOWN_MODELS[known], name=known, source=known)
        if source is None:
            return None
        return ReplicaPerformanceModel.for_deployment(
            source,
            gpu,
            gpus,
            quantization=PLANNER_QUANTIZATION[quantization] if quantization else None,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            max_nodes=max_nodes,
        )
    except (LLMScaleError, ValueError, KeyError):
        return None


def parse_overrides(text: str, where: str) -> dict[str, float]:
    """A JSON object of tunable ScalingPolicy fields; UserInputError naming `where` otherwise."""
    try:
        data = json.loads(text)
    except ValueError:
        raise UserInputError(f"{where}: value {text!r} is not a JSON object") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{where}: value {text!r} is not a JSON object")
    validate_overrides(data, where)
    return {str(k): float(v) for k, v in data.items()}


def validate_overrides(data: Mapping[str, Any], where: str) -> None:
    for key, value in data.items():
        if key not in TUNABLE_FIELDS:
            raise UserInputError(
                f"{where}: field {key!r} is not a tunable ScalingPolicy field; expected one of "
                + ", ".join(sorted(TUNABLE_FIELDS))
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UserInputError(f"{where}: {key} value {value!r} is not a number")

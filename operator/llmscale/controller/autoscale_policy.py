"""LLMDeployment spec -> `ScalingPolicy` (the decision core's input), with capacity priors.

Capacity comes from `spec.scaling.capacityHint` when given, else from the replica performance
model of the model on its GPU (the same model the simulator and emulator use), at default
request lengths; the core refines both online from measured TTFT. Unknown models (custom
architectures) keep the core's defaults. Results are cached per (model, GPU, TP, hint).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Mapping
from typing import Any

from llmscale.api.duration import parse_duration_seconds
from llmscale.controller.autoscale_settings import OVERRIDES_ANNOTATION, parse_overrides
from llmscale.errors import LLMScaleError
from llmscale.scaling import ScalingPolicy, Strategy

log = logging.getLogger(__name__)

LOOP_OWNED = frozenset({"Auto", "Autoscaled", "ScaleToZero"})
DEFAULT_TTFT_P95 = "2s"
DEFAULT_ITL_P95 = "100ms"
# Request lengths assumed for the prior (ShareGPT-like chat, as in the vLLM benchmarks).
PRIOR_PROMPT_TOKENS = 1000.0
PRIOR_GENERATION_TOKENS = 200.0


@functools.lru_cache(maxsize=256)
def capacity_fields(
    model: str, gpu: str, tensor_parallel_size: int | None, capacity_hint_rps: float | None
) -> tuple[tuple[str, float], ...]:
    """ScalingPolicy capacity fields for one (model, GPU) pair; () when the model is unknown."""
    from llmscale.sim.llmscale_policy import capacity_prior
    from llmscale.sim.perfmodel import ReplicaPerformanceModel

    try:
        perf = ReplicaPerformanceModel.for_deployment(model, gpu, tensor_parallel_size)
        prior = capacity_prior(perf, PRIOR_PROMPT_TOKENS, PRIOR_GENERATION_TOKENS, capacity_hint_rps)
        prior["cold_start_seconds"] = perf.cold_start_seconds
    except (LLMScaleError, ValueError, KeyError) as exc:
        log.info("no performance model for %s on %s (%s): using default capacity", model, gpu, exc)
        return ()
    return tuple(sorted(prior.items()))


def gpu_price_per_hour(
    spec: Mapping[str, Any], product: str, operator_prices: Mapping[str, float] | None = None
) -> float:
    """spec.gpuPricePerHour, else the operator's price list (chart values.gpuPrices), else the catalog."""
    price = spec.get("gpuPricePerHour")
    if isinstance(price, int | float) and price >= 0:
        return float(price)
    if operator_prices and product in operator_prices:
        return float(operator_prices[product])
    return catalog_price_per_hour(product)


@functools.lru_cache(maxsize=64)
def catalog_price_per_hour(product: str) -> float:
    from llmscale.planner import get_gpu

    try:
        return float(get_gpu(product).price_per_hour_usd)
    except LLMScaleError:
        return ScalingPolicy.gpu_price_per_hour_usd


def gpus_per_replica(spec: Mapping[str, Any], status: Mapping[str, Any]) -> int:
    """All GPUs of one replica: a multi-node replica (a LeaderWorkerSet group) pays for every node's."""
    nodes = status.get("nodesPerReplica")
    nodes = nodes if isinstance(nodes, int) and nodes > 0 else 1
    count = ((spec.get("resources") or {}).get("gpu") or {}).get("count")
    if isinstance(count, int) and count > 0:
        return count * nodes
    planned = (status.get("plan") or {}).get("tensorParallelSize")
    if isinstance(planned, int) and planned > 0:
        return planned * nodes
    return 1


def policy_for(
    body: Mapping[str, Any],
    overrides: Mapping[str, float],
    gpu_prices: Mapping[str, float] | None = None,
) -> ScalingPolicy:
    """The ScalingPolicy of one LLMDeployment body (dict as the API server returns it)."""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    scaling = spec.get("scaling") or {}
    strategy = Strategy(scaling.get("strategy") or "Auto")
    min_replicas = scaling.get("minReplicas")
    if not isinstance(min_replicas, int):
        min_replicas = 0 if strategy in (Strategy.SCALE_TO_ZERO, Strategy.AUTO) else 1
    max_replicas = max(int(scaling.get("maxReplicas") or 8), 1, min_replicas)
    slo = scaling.get("slo") or {}
    itl = slo.get("itlP95")
    product = str(((spec.get("resources") or {}).get("gpu") or {}).get("product") or "H100-80GB")
    tp = (spec.get("engine") or {}).get("tensorParallelSize")
    hint = scaling.get("capacityHint")
    fields: dict[str, Any] = dict(
        capacity_fields(
            str((spec.get("model") or {}).get("name") or ""),
            product,
            tp if isinstance(tp, int) else None,
            float(hint) if isinstance(hint, int | float) and hint > 0 else None,
        )
    )
    fields.update(
        strategy=strategy,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        slo_ttft_p95_seconds=parse_duration_seconds(str(slo.get("ttftP95") or DEFAULT_TTFT_P95)),
        slo_itl_p95_seconds=parse_duration_seconds(str(itl))
        if itl
        else parse_duration_seconds(DEFAULT_ITL_P95),
        slo_objective=float(slo.get("objective") or 0.99),
        gpu_price_per_hour_usd=gpu_price_per_hour(spec, product, gpu_prices),
        gpus_per_replica=gpus_per_replica(spec, status),
    )
    fields.update(overrides)
    annotation = ((body.get("metadata") or {}).get("annotations") or {}).get(OVERRIDES_ANNOTATION)
    if annotation:
        fields.update(parse_overrides(annotation, f"annotation {OVERRIDES_ANNOTATION}"))
    return dataclasses.replace(ScalingPolicy(), **fields)


def describe(policy: ScalingPolicy) -> str:
    return json.dumps({k: str(v) for k, v in dataclasses.asdict(policy).items()})

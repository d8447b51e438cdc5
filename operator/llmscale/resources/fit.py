"""Admission-time fit check: run the planner on a spec and say whether its pods can fit.

What the schema cannot know (a model too big for its GPUs, a context longer than the model's)
becomes a verdict with numbers; the controller turns it into the ModelFits condition and, when
it does not fit, refuses to create pods (Ready=False with the same message).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from llmscale.api import LLMDeploymentSpec
from llmscale.errors import UserInputError
from llmscale.planner import ContextTooLongError, ModelArchitecture, Plan, plan
from llmscale.planner.catalog import lookup_known_model

# spec.engine.quantization -> the planner's method names; None = the checkpoint's own format.
PLANNER_QUANTIZATION: Final[dict[str, str | None]] = {
    "awq": "awq",
    "awq_marlin": "awq",
    "gptq": "gptq",
    "gptq_marlin": "gptq",
    "fp8": "fp8",
    "bitsandbytes": "bitsandbytes",
    "compressed-tensors": None,
}

# Reasons (CamelCase) as they appear in the ModelFits condition and Events.
REASON_FITS: Final = "ModelFits"
REASON_DOES_NOT_FIT: Final = "ModelDoesNotFit"
REASON_CONTEXT_TOO_LONG: Final = "ContextTooLong"
REASON_INVALID_FOR_MODEL: Final = "InvalidForModel"
REASON_UNKNOWN_MODEL: Final = "UnknownModel"


@dataclass(frozen=True)
class FitVerdict:
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    plan: Plan | None

    @property
    def blocks_pods(self) -> bool:
        """False verdicts hold the rollout; Unknown lets it go ahead (nothing to check against)."""
        return self.status == "False"


def _planner_gpus(spec: LLMDeploymentSpec) -> int | None:
    if spec.resources.gpu.count is not None:
        return spec.resources.gpu.count
    return spec.engine.tensor_parallel_size


def evaluate_fit(
    spec: LLMDeploymentSpec,
    architecture: dict[str, Any] | None = None,
    architecture_source: str = "spec.model.architecture",
) -> FitVerdict:
    """Plan `spec`; `architecture` (config.json fields read from a ConfigMap, named by
    `architecture_source` in messages) wins over spec.model.architecture, which wins over the name.
    """
    model_source: str | ModelArchitecture
    config = architecture if architecture is not None else spec.model.architecture
    if config is not None:
        try:
            model_source = ModelArchitecture.from_hf_config(
                config, name=spec.model.name, source=architecture_source
            )
        except UserInputError as exc:
            return FitVerdict("False", REASON_INVALID_FOR_MODEL, str(exc), None)
    else:
        known = lookup_known_model(spec.model.name)
        if known is None:
            return FitVerdict(
                "Unknown",
                REASON_UNKNOWN_MODEL,
                f"spec.model.name: {spec.model.name} is not in the planner's catalog; set"
                " spec.model.architecture (config.json fields) or architectureConfigMap to check the fit",
                None,
            )
        model_source = known
    engine = spec.engine
    quantization = PLANNER_QUANTIZATION[engine.quantization] if engine.quantization else None
    try:
        result = plan(
            model_source,
            spec.resources.gpu.product,
            gpus=_planner_gpus(spec),
            quantization=quantization,
            max_model_len=engine.max_model_len,
            gpu_memory_utilization=engine.gpu_memory_utilization,
            dtype=engine.dtype,
            gpu_price_per_hour_usd=spec.gpu_price_per_hour,
            max_nodes=spec.resources.max_nodes_per_replica,
        )
    except ContextTooLongError as exc:
        return FitVerdict("False", REASON_CONTEXT_TOO_LONG, _spec_words(str(exc)), None)
    except UserInputError as exc:
        return FitVerdict("False", REASON_INVALID_FOR_MODEL, _spec_words(str(exc)), None)
    if not result.fits:
        hint = ""
        if engine.max_model_len is None and result.max_fitting_model_len > 0:
            hint = f"; spec.engine.maxModelLen <= {result.max_fitting_model_len} would fit"
        return FitVerdict("False", REASON_DOES_NOT_FIT, f"{result.reason}{hint}", result)
    return FitVerdict("True", REASON_FITS, fits_message(result), result)


def fits_message(result: Plan) -> str:
    layout = f"tensor parallel {result.tensor_parallel_size}"
    if result.nodes_per_replica > 1:
        layout = (
            f"{result.nodes_per_replica} nodes x {result.gpus_per_node} GPUs, {layout} x pipeline"
            f" parallel {result.pipeline_parallel_size}"
        )
    return (
        f"{result.weights_gib:.1f} GiB of weights on {result.gpus} x {result.gpu}"
        f" ({layout}); KV cache {result.kv_cache_tokens} tokens ="
        f" {result.max_concurrent_sequences} sequences of {result.max_model_len} tokens;"
        f" ITL floor {result.itl_floor_seconds * 1000:.1f} ms;"
        f" {result.gpu_cost_per_hour:.2f} USD/h per replica"
    )


_FLAG_TO_FIELD: Final = {
    "--max-model-len": "spec.engine.maxModelLen",
    "--quantization/--dtype": "spec.engine.quantization/dtype",
    "--quantization": "spec.engine.quantization",
    "--gpus": "spec.resources.gpu.count",
    "--nodes": "spec.resources.maxNodesPerReplica",
    "--max-nodes": "spec.resources.maxNodesPerReplica",
    "--gpu-memory-utilization": "spec.engine.gpuMemoryUtilization",
    "--model": "spec.model.name",
}


def _spec_words(message: str) -> str:
    """The planner speaks CLI flags; a condition should name the spec field instead."""
    for flag, field in _FLAG_TO_FIELD.items():
        if message.startswith(flag + ":"):
            return field + message[len(flag) :]
    return message


def plan_status(result: Plan) -> dict[str, Any]:
    """`status.plan` (camelCase keys of the planner's JSON)."""
    return {
        "fits": result.fits,
        "gpu": result.gpu,
        "gpus": result.gpus,
        "tensorParallelSize": result.tensor_parallel_size,
        "pipelineParallelSize": result.pipeline_parallel_size,
        "nodesPerReplica": result.nodes_per_replica,
        "gpusPerNode": result.gpus_per_node,
        "quantization": result.quantization,
        "dtype": result.dtype,
        "weightsGib": round(result.weights_gib, 3),
        "kvBytesPerToken": result.kv_bytes_per_token,
        "kvCacheTokens": result.kv_cache_tokens,
        "maxConcurrentSequences": result.max_concurrent_sequences,
        "maxModelLen": result.max_model_len,
        "maxFittingModelLen": result.max_fitting_model_len,
        "maxNumSeqs": result.max_num_seqs,
        "itlFloorSeconds": round(result.itl_floor_seconds, 6),
        "gpuCostPerHour": round(result.gpu_cost_per_hour, 4),
        **({"reason": result.reason} if result.reason else {}),
    }

"""The LLMDeployment a simulation runs: a manifest (`simulate --deployment FILE.yaml`) or the default.

The simulated `llmscale` policy is built from it exactly as the operator builds it
(`llmscale.scaling.policy_for_resource`); the fleet (model, GPU, tensor parallel size, SLO,
replica bounds) follows it too, so every policy is scored against the deployment's own SLO.
Flags override single fields (`with_overrides`); a bad manifest or flag is ONE line
(UserInputError) naming the field and the value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmscale.api import GPU_PRODUCTS, LLMDeployment, defaults
from llmscale.errors import LLMScaleError, UserInputError
from llmscale.planner.perfmodel import ReplicaPerformanceModel
from llmscale.scaling.from_spec import performance_model

DEFAULT_NAME = "simulated"


def load_deployment(path: str | Path, field: str = "--deployment") -> LLMDeployment:
    """Read and validate one LLMDeployment manifest (the first document of kind LLMDeployment);
    errors are one line starting with `field` and the path."""
    where = f"{field} {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserInputError(f"{where}: cannot read the file ({exc.strerror or exc})") from None
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise UserInputError(f"{where}:{line} is not valid YAML") from None
    manifests = [doc for doc in documents if isinstance(doc, dict) and doc.get("kind") == defaults.KIND]
    if not manifests:
        raise UserInputError(f"{where}: kind: no document of kind {defaults.KIND} in the file")
    body = dict(manifests[0])
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        body["metadata"] = {**(metadata if isinstance(metadata, dict) else {}), "name": DEFAULT_NAME}
    return LLMDeployment.parse(body, where)


def default_deployment(
    model: str = defaults.SIMULATE_MODEL,
    gpu: str = defaults.SIMULATE_GPU,
    *,
    gpus: int | None = None,
    strategy: str | None = None,
    min_replicas: int | None = None,
    max_replicas: int = defaults.SIMULATE_MAX_REPLICAS,
    slo_ttft_p95_seconds: float | None = None,
    slo_itl_p95_seconds: float | None = None,
    slo_objective: float | None = None,
) -> LLMDeployment:
    """The deployment `llmscale simulate` runs without a manifest: API defaults everywhere else."""
    resource = LLMDeployment.parse(
        {
            "metadata": {"name": DEFAULT_NAME},
            "spec": {
                "model": {"name": defaults.SIMULATE_MODEL},
                "resources": {"gpu": {"product": defaults.SIMULATE_GPU}},
            },
        },
        "LLMDeployment",
    )
    return with_overrides(
        resource,
        model=model,
        gpu=gpu,
        gpus=gpus,
        strategy=strategy,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        slo_ttft_p95_seconds=slo_ttft_p95_seconds,
        slo_itl_p95_seconds=slo_itl_p95_seconds,
        slo_objective=slo_objective,
    )


def with_overrides(
    resource: LLMDeployment,
    *,
    model: str | None = None,
    gpu: str | None = None,
    gpus: int | None = None,
    strategy: str | None = None,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    slo_ttft_p95_seconds: float | None = None,
    slo_itl_p95_seconds: float | None = None,
    slo_objective: float | None = None,
) -> LLMDeployment:
    """`resource` with single fields replaced (None keeps the manifest's value); re-validated, so a
    combination the API would reject (minReplicas 1 with ScaleToZero, ...) is one line naming it."""
    # exclude_unset: what the manifest left to the API's defaults stays unset (model_fields_set).
    body: dict[str, Any] = resource.model_dump(by_alias=True, exclude_unset=True, exclude={"status"})
    spec = body["spec"]
    flags: list[str] = []
    if gpu is not None and gpu not in GPU_PRODUCTS:
        raise UserInputError(
            f"--gpu: value {gpu!r} is not a GPU of the catalog; expected one of {', '.join(GPU_PRODUCTS)}"
        )
    if model is not None:
        spec.setdefault("model", {})["name"] = model
        flags.append("--model")
    if gpu is not None:
        spec.setdefault("resources", {}).setdefault("gpu", {})["product"] = gpu
        flags.append("--gpu")
    if gpus is not None:
        spec.setdefault("resources", {}).setdefault("gpu", {})["count"] = gpus
        spec.get("engine", {}).pop("tensorParallelSize", None)
        flags.append("--gpus")
    scaling = spec.setdefault("scaling", {})
    if strategy is not None:
        scaling["strategy"] = strategy
        flags.append("--strategy")
    if min_replicas is not None:
        scaling["minReplicas"] = min_replicas
    if max_replicas is not None:
        scaling["maxReplicas"] = max_replicas
        flags.append("--max-replicas")
    slo = scaling.setdefault("slo", {})
    if slo_ttft_p95_seconds is not None:
        slo["ttftP95"] = duration_text(slo_ttft_p95_seconds)
        flags.append("--slo-ttft-p95")
    if slo_itl_p95_seconds is not None:
        slo["itlP95"] = duration_text(slo_itl_p95_seconds)
        flags.append("--slo-itl-p95")
    if slo_objective is not None:
        slo["objective"] = slo_objective
    if not flags and min_replicas is None and slo_objective is None:
        return resource
    return LLMDeployment.parse(body, "/".join(flags) or "LLMDeployment")


def duration_text(seconds: float) -> str:
    """A Go duration string the API accepts for `seconds` (1.5 -> "1.5s", 0.25 -> "250ms")."""
    if seconds < 1.0:
        return f"{seconds * 1000:.3f}".rstrip("0").rstrip(".") + "ms"
    return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"


def simulated_deployment(
    path: str | None,
    *,
    model: str | None = None,
    gpu: str | None = None,
    gpus: int | None = None,
    max_replicas: int | None = None,
    slo_ttft_p95_seconds: float | None = None,
    slo_itl_p95_seconds: float | None = None,
    field: str = "--deployment",
) -> tuple[LLMDeployment, ReplicaPerformanceModel]:
    """`simulate`'s deployment (the manifest at `path`, else the default one) with the flags
    applied, and the replica performance model the fleet runs for it (the backtest's too:
    `sim.backtest.deployment`). `field` names the input in error messages."""
    if path is None:
        resource = default_deployment(
            model or defaults.SIMULATE_MODEL,
            gpu or defaults.SIMULATE_GPU,
            gpus=gpus,
            max_replicas=max_replicas or defaults.SIMULATE_MAX_REPLICAS,
            slo_ttft_p95_seconds=slo_ttft_p95_seconds,
            slo_itl_p95_seconds=slo_itl_p95_seconds,
        )
    else:
        resource = with_overrides(
            load_deployment(path, field),
            model=model,
            gpu=gpu,
            gpus=gpus,
            max_replicas=max_replicas,
            slo_ttft_p95_seconds=slo_ttft_p95_seconds,
            slo_itl_p95_seconds=slo_itl_p95_seconds,
        )
    spec = resource.spec
    replica = performance_model(spec)
    if replica is None:
        # Not in the catalog (e.g. --model config.json): the planner reads it, or names the problem.
        # The llmscale policy then keeps the default capacity, as the operator does.
        try:
            replica = ReplicaPerformanceModel.for_deployment(
                spec.model.name,
                spec.resources.gpu.product,
                spec.resources.gpu.count or spec.engine.tensor_parallel_size,
            )
        except UserInputError:
            raise
        except LLMScaleError as exc:
            where = field if path is None else f"{field} {path}"
            raise UserInputError(f"{where}: {exc}") from None
    return resource, replica


def scored_itl_seconds(resource: LLMDeployment) -> float | None:
    """The ITL target the fleet scores: only one the manifest or a flag set explicitly (the API's
    default 100 ms is the policy's prior, not a target every simulation is judged by)."""
    slo = resource.spec.scaling.slo
    return slo.itl_p95_seconds if "itl_p95" in slo.model_fields_set else None

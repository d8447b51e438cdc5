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

from llmscale.api import LLMDeployment, defaults
from llmscale.errors import UserInputError

DEFAULT_NAME = "simulated"


def load_deployment(path: str | Path) -> LLMDeployment:
    """Read and validate one LLMDeployment manifest (the first document of kind LLMDeployment)."""
    where = f"--deployment {path}"
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
            "spec": {"model": {"name": model}, "resources": {"gpu": {"product": gpu}}},
        },
        "--model/--gpu",
    )
    return with_overrides(
        resource,
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
    body: dict[str, Any] = resource.model_dump(by_alias=True, exclude_none=True, exclude={"status"})
    spec = body["spec"]
    flags: list[str] = []
    if model is not None:
        spec["model"]["name"] = model
        flags.append("--model")
    if gpu is not None:
        spec["resources"]["gpu"]["product"] = gpu
        flags.append("--gpu")
    if gpus is not None:
        spec["resources"]["gpu"]["count"] = gpus
        spec["engine"].pop("tensorParallelSize", None)
        flags.append("--gpus")
    scaling = spec["scaling"]
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

"""The scenario's LLMDeployment manifest: what the simulated fleet and the llmscale policy are.

`llmscale_policy_for` is the one place that turns a manifest into the simulated llmscale
policy: `LLMScalePolicy` with that deployment, which calls `policy_from_spec` on its spec, so
the backtest runs exactly what the operator builds for that resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from llmscale.api import defaults
from llmscale.api.deployment import LLMDeployment
from llmscale.errors import LLMScaleError, UserInputError
from llmscale.scaling import PolicySettings
from llmscale.sim.perfmodel import ReplicaPerformanceModel
from llmscale.sim.policy import SimPolicy


@dataclass(frozen=True)
class DeploymentSetup:
    resource: LLMDeployment
    model: ReplicaPerformanceModel
    slo_ttft_p95_seconds: float
    slo_itl_p95_seconds: float
    slo_objective: float
    max_replicas: int


def load_deployment(path: Path, field: str = "deployment") -> DeploymentSetup:
    """Parse and plan an LLMDeployment manifest; one UserInputError line on any problem."""
    if not path.is_file():
        raise UserInputError(f"{field}: file {str(path)!r} does not exist")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{field}: file {str(path)!r} is not YAML ({type(exc).__name__})") from None
    kind = document.get("kind") if isinstance(document, dict) else None
    if kind != defaults.KIND:
        raise UserInputError(
            f"{field}: file {str(path)!r} has kind {kind!r}; expected an LLMDeployment manifest"
        )
    try:
        resource = LLMDeployment.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise UserInputError(
            f"{field}: file {str(path)!r}: {where}: {error['msg']} (value {error.get('input')!r})"
        ) from None
    spec = resource.spec
    engine = spec.engine
    tensor_parallel = engine.tensor_parallel_size if engine else None
    gpu = spec.resources.gpu.product if spec.resources and spec.resources.gpu else None
    options: dict[str, object] = {}
    if engine is not None and engine.max_model_len:
        options["max_model_len"] = engine.max_model_len
    if engine is not None and engine.quantization:
        options["quantization"] = engine.quantization
    try:
        model = ReplicaPerformanceModel.for_deployment(
            spec.model.name, gpu or "H100-80GB", tensor_parallel, **options
        )
    except LLMScaleError as exc:
        raise UserInputError(f"{field}: file {str(path)!r}: {exc}") from None
    slo = spec.scaling.slo
    return DeploymentSetup(
        resource=resource,
        model=model,
        slo_ttft_p95_seconds=slo.ttft_p95_seconds,
        slo_itl_p95_seconds=slo.itl_p95_seconds,
        slo_objective=slo.objective,
        max_replicas=spec.scaling.max_replicas,
    )


def llmscale_policy_for(resource: LLMDeployment, settings: PolicySettings | None = None) -> SimPolicy:
    """The simulated llmscale policy for one LLMDeployment: `policy_from_spec` on its spec, as the
    operator builds it (`llmscale.sim.llmscale_policy.LLMScalePolicy` with that deployment)."""
    from llmscale.sim.llmscale_policy import LLMScalePolicy

    return LLMScalePolicy(deployment=resource, settings=settings)

"""The scenario's LLMDeployment manifest: what the simulated fleet and the llmscale policy are.

`llmscale_policy_for` is the one place that turns a manifest into the simulated llmscale
policy: `LLMScalePolicy` with that deployment, which calls `policy_from_spec` on its spec, so
the backtest runs exactly what the operator builds for that resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmscale.api.deployment import LLMDeployment
from llmscale.errors import UserInputError
from llmscale.scaling import PolicySettings
from llmscale.sim.deployment import simulated_deployment
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
    """Parse and plan an LLMDeployment manifest with `llmscale simulate --deployment`'s reader
    and fleet model (`sim.deployment.simulated_deployment`: the first LLMDeployment document,
    the planner's performance model for its spec as the policy's prior uses it); one
    UserInputError line naming `field`, the file and the problem."""
    if not path.is_file():
        raise UserInputError(f"{field}: file {str(path)!r} does not exist")
    resource, model = simulated_deployment(str(path), field=f"{field}: file")
    slo = resource.spec.scaling.slo
    return DeploymentSetup(
        resource=resource,
        model=model,
        slo_ttft_p95_seconds=slo.ttft_p95_seconds,
        slo_itl_p95_seconds=slo.itl_p95_seconds,
        slo_objective=slo.objective,
        max_replicas=resource.spec.scaling.max_replicas,
    )


def llmscale_policy_for(resource: LLMDeployment, settings: PolicySettings | None = None) -> SimPolicy:
    """The simulated llmscale policy for one LLMDeployment: `policy_from_spec` on its spec, as the
    operator builds it (`llmscale.sim.llmscale_policy.LLMScalePolicy` with that deployment)."""
    from llmscale.sim.llmscale_policy import LLMScalePolicy

    return LLMScalePolicy(deployment=resource, settings=settings)

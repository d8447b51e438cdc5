"""Who decides the replica count, and what it is (pure).

Warm: the spec (`spec.scaling.replicas`, written by `kubectl scale` through /scale; default
minReplicas, at least 1). Auto, Autoscaled, ScaleToZero: the autoscaling loop
(controller/autoscaling/handlers.py), which writes `status.desiredReplicas`; the reconcile applies that
value, so the two never fight. Before the loop has written anything, the reconcile starts from
`spec.scaling.replicas` if set, else 0 for ScaleToZero and max(minReplicas, 1) otherwise.
"""

from __future__ import annotations

from llmscale.api import LLMDeploymentSpec, LLMDeploymentStatus


def clamp(replicas: int, spec: LLMDeploymentSpec) -> int:
    scaling = spec.scaling
    return max(scaling.effective_min_replicas, min(replicas, scaling.max_replicas))


def initial_replicas(spec: LLMDeploymentSpec) -> int:
    scaling = spec.scaling
    if scaling.replicas is not None:
        return scaling.replicas
    if scaling.strategy == "ScaleToZero":
        return scaling.effective_min_replicas
    return max(scaling.effective_min_replicas, 1)


def desired_replicas(spec: LLMDeploymentSpec, status: LLMDeploymentStatus | None) -> int:
    scaling = spec.scaling
    if not scaling.loop_owned:
        return scaling.fixed_replicas
    if status is not None and status.desired_replicas is not None:
        return clamp(status.desired_replicas, spec)
    return clamp(initial_replicas(spec), spec)


def concrete_strategy(spec: LLMDeploymentSpec, status: LLMDeploymentStatus | None) -> str:
    """The strategy in force: the spec's, or for Auto the loop's latest choice (Autoscaled first)."""
    if spec.scaling.strategy != "Auto":
        return spec.scaling.strategy
    if status is not None and status.strategy in ("Warm", "Autoscaled", "ScaleToZero"):
        return status.strategy
    return "Autoscaled"

"""The Ready condition as an ordered chain of small rules (pure; the first that fires decides).

Each rule returns (status, reason, message) or None. Reasons are CamelCase and go verbatim into
the condition and the Events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Verdict = tuple[str, str, str]


@dataclass(frozen=True)
class ReadinessInputs:
    desired_replicas: int
    deployment: dict[str, Any] | None  # as the API server returned it (with status)
    generation: int | None
    pods: Sequence[dict[str, Any]] = field(default_factory=tuple)


def _deployment_status(inputs: ReadinessInputs) -> dict[str, Any]:
    return dict((inputs.deployment or {}).get("status") or {})


def scaled_to_zero(inputs: ReadinessInputs) -> Verdict | None:
    if inputs.desired_replicas == 0:
        return "True", "ScaledToZero", "0 replicas by decision; the gateway holds requests and wakes one"
    return None


def rollout_stuck(inputs: ReadinessInputs) -> Verdict | None:
    for cond in _deployment_status(inputs).get("conditions") or ():
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return (
                "False",
                "RolloutStuck",
                str(cond.get("message") or "rollout exceeded its progress deadline"),
            )
    return None


def unschedulable(inputs: ReadinessInputs) -> Verdict | None:
    for pod in inputs.pods:
        for cond in (pod.get("status") or {}).get("conditions") or ():
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                name = (pod.get("metadata") or {}).get("name", "?")
                detail = cond.get("message") or cond.get("reason") or "no node fits"
                return "False", "Unschedulable", f"pod {name} cannot be scheduled: {detail}"
    return None


def replicas_ready(inputs: ReadinessInputs) -> Verdict | None:
    status = _deployment_status(inputs)
    desired = inputs.desired_replicas
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    current = int(status.get("replicas") or 0)
    observed = (inputs.deployment or {}).get("metadata", {}).get("generation")
    rolled_out = status.get("observedGeneration") == observed and updated >= desired and current <= desired
    if ready >= desired and rolled_out:
        return "True", "ReplicasReady", f"{ready}/{desired} replicas ready"
    return None


def replicas_starting(inputs: ReadinessInputs) -> Verdict | None:
    status = _deployment_status(inputs)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    return (
        "False",
        "ReplicasStarting",
        f"{ready}/{inputs.desired_replicas} replicas ready, {updated} on the latest spec"
        " (loading a model takes minutes)",
    )


RULES: tuple[Callable[[ReadinessInputs], Verdict | None], ...] = (
    scaled_to_zero,
    replicas_ready,
    rollout_stuck,
    unschedulable,
    replicas_starting,
)


def ready_verdict(inputs: ReadinessInputs) -> Verdict:
    for rule in RULES:
        verdict = rule(inputs)
        if verdict is not None:
            return verdict
    raise AssertionError("replicas_starting always fires")  # pragma: no cover

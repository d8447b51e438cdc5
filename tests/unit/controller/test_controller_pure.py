"""Pure controller pieces: replica ownership, the Ready rule chain, condition merging."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from llmscale.api import LLMDeploymentSpec, LLMDeploymentStatus
from llmscale.controller.readiness import ReadinessInputs, ready_verdict
from llmscale.controller.replicas import concrete_strategy, desired_replicas
from llmscale.controller.status import condition, merge_conditions


def spec(**scaling: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate(
        {"model": {"name": "m"}, "resources": {"gpu": {"product": "L4"}}, "scaling": scaling}
    )


def status(**fields: Any) -> LLMDeploymentStatus:
    return LLMDeploymentStatus.model_validate(fields)


@pytest.mark.parametrize(
    ("scaling", "current", "expected"),
    [
        ({"strategy": "Warm"}, None, 1),
        ({"strategy": "Warm", "minReplicas": 3}, None, 3),
        ({"strategy": "Warm", "replicas": 2}, {"desiredReplicas": 7}, 2),  # spec wins for Warm
        ({"strategy": "Autoscaled"}, None, 1),
        ({"strategy": "Autoscaled", "minReplicas": 2}, None, 2),
        ({"strategy": "Autoscaled", "maxReplicas": 4}, {"desiredReplicas": 3}, 3),  # the loop's number
        ({"strategy": "Autoscaled", "maxReplicas": 4}, {"desiredReplicas": 9}, 4),  # clamped
        ({"strategy": "ScaleToZero"}, None, 0),
        ({"strategy": "ScaleToZero"}, {"desiredReplicas": 2}, 2),
        ({"strategy": "Auto"}, None, 1),
        ({"strategy": "Auto", "replicas": 3}, None, 3),  # /scale seeds a loop-owned deployment
    ],
)
def test_desired_replicas(scaling: dict[str, Any], current: dict[str, Any] | None, expected: int) -> None:
    assert desired_replicas(spec(**scaling), status(**current) if current else None) == expected


def test_concrete_strategy() -> None:
    assert concrete_strategy(spec(strategy="Warm"), None) == "Warm"
    assert concrete_strategy(spec(strategy="Auto"), None) == "Autoscaled"
    assert concrete_strategy(spec(strategy="Auto"), status(strategy="ScaleToZero")) == "ScaleToZero"


def deployment(**status_fields: Any) -> dict[str, Any]:
    return {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, **status_fields}}


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (ReadinessInputs(0, deployment(), 1), ("True", "ScaledToZero")),
        (
            ReadinessInputs(2, deployment(replicas=2, readyReplicas=2, updatedReplicas=2), 1),
            ("True", "ReplicasReady"),
        ),
        # ready but an old ReplicaSet still has a pod: still rolling out
        (
            ReadinessInputs(2, deployment(replicas=3, readyReplicas=2, updatedReplicas=1), 1),
            ("False", "ReplicasStarting"),
        ),
        (
            ReadinessInputs(
                1,
                deployment(
                    conditions=[
                        {"type": "Progressing", "reason": "ProgressDeadlineExceeded", "message": "late"}
                    ]
                ),
                1,
            ),
            ("False", "RolloutStuck"),
        ),
        (ReadinessInputs(1, None, 1), ("False", "ReplicasStarting")),
    ],
)
def test_ready_rule_chain(inputs: ReadinessInputs, expected: tuple[str, str]) -> None:
    assert ready_verdict(inputs)[:2] == expected


def test_merge_conditions_keeps_transition_time_while_status_holds() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = merge_conditions([], [condition("Ready", "False", "ReplicasStarting", "0/1")], t0)
    assert first[0].last_transition_time == "2026-01-01T00:00:00Z"
    later = merge_conditions(
        first, [condition("Ready", "False", "Unschedulable", "no GPU")], t0 + timedelta(minutes=1)
    )
    assert later[0].last_transition_time == "2026-01-01T00:00:00Z" and later[0].reason == "Unschedulable"
    flipped = merge_conditions(
        later, [condition("Ready", "True", "ReplicasReady", "1/1")], t0 + timedelta(minutes=2)
    )
    assert flipped[0].last_transition_time == "2026-01-01T00:02:00Z"
    other = merge_conditions(flipped, [condition("MetricsAvailable", "True", "Ok", "")], t0)
    assert [c.type for c in other] == ["Ready", "MetricsAvailable"]

"""The pure scaling decision core: `decide(inputs, policy, state, now) -> Decision`."""

from __future__ import annotations

from llmscale.scaling.core import cold_start_seconds, decide, horizon_seconds, idle_proven
from llmscale.scaling.from_spec import PolicySettings, policy_for_resource, policy_from_spec
from llmscale.scaling.types import (
    Decision,
    DecisionInputs,
    Forecast,
    ScalerState,
    ScalingPolicy,
    Strategy,
)

__all__ = [
    "Decision",
    "DecisionInputs",
    "Forecast",
    "PolicySettings",
    "ScalerState",
    "ScalingPolicy",
    "Strategy",
    "cold_start_seconds",
    "decide",
    "horizon_seconds",
    "idle_proven",
    "policy_for_resource",
    "policy_from_spec",
]

"""The pure scaling decision core: `decide(inputs, policy, state, now) -> Decision`."""

from __future__ import annotations

from llmscale.scaling.core import cold_start_seconds, decide, horizon_seconds
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
    "ScalerState",
    "ScalingPolicy",
    "Strategy",
    "cold_start_seconds",
    "decide",
    "horizon_seconds",
]

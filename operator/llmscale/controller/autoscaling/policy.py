"""LLMDeployment body -> `ScalingPolicy`: parse the body with the API's pydantic model, then the
one translation the simulator uses too (`llmscale.scaling.policy_for_resource`).

Nothing is decided here: capacity priors, request-length priors and every default live in the
pure layers (`llmscale.scaling.from_spec`, `llmscale.planner.perfmodel`, `llmscale.api.defaults`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from llmscale.api import LOOP_OWNED_STRATEGIES, LLMDeployment
from llmscale.controller.autoscaling.settings import AutoscalerSettings
from llmscale.scaling import ScalingPolicy, policy_for_resource

LOOP_OWNED = LOOP_OWNED_STRATEGIES


def policy_for(body: Mapping[str, Any], settings: AutoscalerSettings) -> ScalingPolicy:
    """The ScalingPolicy of one LLMDeployment body (a dict as the API server returns it).

    A body the pydantic model rejects raises UserInputError naming the field and value (the loop
    logs it and skips the deployment; reconcile reports the same problem in its conditions).
    """
    name = str((body.get("metadata") or {}).get("name") or "?")
    resource = LLMDeployment.parse(body, f"LLMDeployment {name}")
    return policy_for_resource(resource, settings.policy_settings())


def describe(policy: ScalingPolicy) -> str:
    return json.dumps({k: str(v) for k, v in dataclasses.asdict(policy).items()})

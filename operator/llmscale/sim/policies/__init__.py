"""Scaling policies for the fleet simulator, by name: llmscale, hpa, keda, kpa, warm, oracle
(the per-bin schedule kept for `get_policy`; the searched oracle is `llmscale.sim.oracle`).

`get_policy(name, **overrides)` builds a fresh policy (policies keep state across ticks);
overrides set the policy's documented parameters, e.g. `get_policy("hpa", tolerance=0.2)`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any, cast

from llmscale.errors import UserInputError
from llmscale.sim.policies.hpa import HPAPolicy, KEDAPolicy
from llmscale.sim.policies.kpa import KPAPolicy
from llmscale.sim.policies.static import OraclePolicy, WarmPolicy
from llmscale.sim.policy import SimPolicy

POLICY_NAMES: tuple[str, ...] = (
    "llmscale", "hpa", "keda", "kpa", "warm", "oracle", "hpa-tuned", "keda-tuned", "kpa-tuned",
)  # fmt: skip
# Names that need a search over whole simulations (llmscale.sim.runner), not one policy object.
SEARCHED_POLICIES: frozenset[str] = frozenset({"oracle", "hpa-tuned", "keda-tuned", "kpa-tuned"})


class PolicyUnavailableError(UserInputError):
    """A registered policy whose implementation is not in this checkout."""


def _llmscale(**overrides: Any) -> SimPolicy:
    try:
        module = importlib.import_module("llmscale.sim.llmscale_policy")
    except ModuleNotFoundError as exc:
        raise PolicyUnavailableError(
            "--policy: 'llmscale' is not available in this build (llmscale.sim.llmscale_policy is missing)"
        ) from exc
    factory: Callable[..., SimPolicy] = module.LLMScalePolicy
    policy: SimPolicy = factory(**overrides)
    return policy


_FACTORIES: dict[str, Callable[..., Any]] = {
    "llmscale": _llmscale,
    "hpa": HPAPolicy,
    "keda": KEDAPolicy,
    "kpa": KPAPolicy,
    "warm": WarmPolicy,
    "oracle": OraclePolicy,
}


def get_policy(name: str, **overrides: Any) -> SimPolicy:
    factory = _FACTORIES.get(name.strip().lower()) if isinstance(name, str) else None
    if factory is None:
        raise UserInputError(
            f"--policy: value {name!r} is not a known policy; expected one of {', '.join(POLICY_NAMES)}"
        )
    if overrides and dataclasses.is_dataclass(factory):
        fields = {f.name for f in dataclasses.fields(factory) if f.init}
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise UserInputError(
                f"policy {name}: parameter {unknown[0]!r} is unknown; "
                f"expected one of {', '.join(sorted(fields))}"
            )
    policy: SimPolicy = cast(SimPolicy, factory(**overrides))
    return policy


__all__ = ["POLICY_NAMES", "HPAPolicy", "KEDAPolicy", "KPAPolicy", "OraclePolicy", "WarmPolicy", "get_policy"]

"""Run one named policy on a trace: the causal ones directly, the tuned and the oracle by search.

* `hpa`, `keda`, `kpa`, `llmscale`, `warm`: one simulation.
* `hpa-tuned`, `kpa-tuned`, `keda-tuned`: the hindsight-best target of that baseline on this very
  scenario, the strongest setting a team could reach by tuning it on the traffic: a sweep of
  `SWEEP` multiples of the planned target (hpa: running requests per pod, kpa: concurrency per
  pod) or of `KEDA_THRESHOLDS` (waiting requests per pod); the cheapest setting whose attainment
  meets the SLO objective wins, or, when none does, the best attainment (then the cheaper).
* `oracle`: `llmscale.sim.oracle.run_oracle`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from llmscale.errors import UserInputError
from llmscale.sim.capacity import PRIOR_GENERATION_TOKENS, PRIOR_PROMPT_TOKENS, planned_capacity_rps
from llmscale.sim.fleet import FleetConfig, simulate
from llmscale.sim.policies import get_policy
from llmscale.sim.policies.common import concurrency_at
from llmscale.sim.policy import SimPolicy
from llmscale.sim.results import PolicyResult
from llmscale.sim.traces import Trace

SWEEP: tuple[float, ...] = (0.35, 0.5, 0.7, 1.0, 1.4, 2.0)
KEDA_THRESHOLDS: tuple[float, ...] = (1.0, 2.0, 3.0, 5.0, 8.0, 13.0)
TUNED: dict[str, tuple[str, str]] = {
    "hpa-tuned": ("hpa", "target_running_per_replica"),
    "kpa-tuned": ("kpa", "target_concurrency"),
    "keda-tuned": ("keda", "waiting_threshold"),
}


def planned_concurrency(config: FleetConfig) -> float:
    """In-flight requests per replica at the planned capacity (the hpa and kpa default target)."""
    return concurrency_at(
        config.model, planned_capacity_rps(config.model), PRIOR_PROMPT_TOKENS, PRIOR_GENERATION_TOKENS
    )


def sweep_values(name: str, config: FleetConfig) -> tuple[float, ...]:
    if name == "keda-tuned":
        return KEDA_THRESHOLDS
    base = planned_concurrency(config)
    if name == "kpa-tuned":
        base *= 0.7  # the kpa default: planned concurrency x Knative's target utilisation
    return tuple(round(base * multiple, 3) for multiple in SWEEP)


def better(candidate: PolicyResult, best: PolicyResult | None, objective: float) -> bool:
    """Cheapest meeting the objective; else the highest attainment, then the cheaper."""
    if best is None:
        return True
    meets, best_meets = candidate.slo_attainment >= objective, best.slo_attainment >= objective
    if meets != best_meets:
        return meets
    if meets:
        return candidate.gpu_hours < best.gpu_hours
    if candidate.slo_attainment != best.slo_attainment:
        return candidate.slo_attainment > best.slo_attainment
    return candidate.gpu_hours < best.gpu_hours


def run_tuned(name: str, trace: Trace, config: FleetConfig) -> PolicyResult:
    base, parameter = TUNED[name]
    best: PolicyResult | None = None
    for value in sweep_values(name, config):
        result = simulate(trace, get_policy(base, **{parameter: value}), config)
        result = replace(result, name=name, parameters={parameter: value})
        if better(result, best, config.slo_objective):
            best = result
    assert best is not None
    return best


def run_policy(
    name: str,
    trace: Trace,
    config: FleetConfig,
    llmscale_factory: Callable[[], SimPolicy] | None = None,
    **overrides: Any,
) -> PolicyResult:
    """One named policy's result on `trace` (see the module docstring)."""
    key = name.strip().lower()
    if key in TUNED:
        return run_tuned(key, trace, config)
    if key == "oracle":
        from llmscale.sim.oracle import run_oracle

        return run_oracle(trace, config)
    if key == "llmscale" and llmscale_factory is not None:
        return simulate(trace, llmscale_factory(), config)
    if key not in ("llmscale", "hpa", "keda", "kpa", "warm"):
        raise UserInputError(f"--policy: value {name!r} is not a known policy")
    return simulate(trace, get_policy(key, **overrides), config)

"""Run one backtest scenario through every policy and score llmscale against the targets.

Targets (issue "Scaling that generalises"), for the `llmscale` row of each scenario:
* attainment >= the best attainment of hpa, keda, kpa and their tuned variants, minus 0.005;
* GPU-hours <= 0.8 x every one of those baselines that reaches at least llmscale's attainment;
* GPU-hours <= 1.25 x the oracle's;
* no failed request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmscale.sim.backtest.deployment import DeploymentSetup, llmscale_policy_for, load_deployment
from llmscale.sim.backtest.suite import Scenario
from llmscale.sim.fleet import FleetConfig
from llmscale.sim.generators import generate
from llmscale.sim.results import PolicyResult
from llmscale.sim.runner import run_policy
from llmscale.sim.traces import Trace, read_trace

BASELINES: tuple[str, ...] = ("hpa", "keda", "kpa", "hpa-tuned", "keda-tuned", "kpa-tuned")
POLICIES: tuple[str, ...] = ("llmscale", *BASELINES, "warm", "oracle")
ATTAINMENT_SLACK = 0.005
COST_VS_BASELINE = 0.8
COST_VS_ORACLE = 1.25


@dataclass(frozen=True)
class PreparedScenario:
    scenario: Scenario
    setup: DeploymentSetup
    trace: Trace
    config: FleetConfig


@dataclass
class ScenarioResult:
    scenario: Scenario
    trace: Trace
    config: FleetConfig
    results: list[PolicyResult] = field(default_factory=list)

    def by_name(self, name: str) -> PolicyResult | None:
        return next((r for r in self.results if r.name == name), None)

    def best_baseline(self) -> PolicyResult | None:
        baselines = [r for r in self.results if r.name in BASELINES]
        if not baselines:
            return None
        return max(baselines, key=lambda r: (r.slo_attainment, -r.gpu_hours))

    def targets(self) -> dict[str, bool | None]:
        """Pass/fail of each target for llmscale; None where a needed result is missing."""
        ours, oracle, best = self.by_name("llmscale"), self.by_name("oracle"), self.best_baseline()
        if ours is None:
            return {}
        baselines = [r for r in self.results if r.name in BASELINES]
        as_good = [r for r in baselines if r.slo_attainment >= ours.slo_attainment]
        return {
            "attainment": None
            if best is None
            else ours.slo_attainment >= best.slo_attainment - ATTAINMENT_SLACK,
            "cost_vs_baselines": None
            if not baselines
            else all(ours.gpu_hours <= COST_VS_BASELINE * r.gpu_hours for r in as_good),
            "cost_vs_oracle": None if oracle is None else ours.gpu_hours <= COST_VS_ORACLE * oracle.gpu_hours,
            "no_failed": ours.failed_requests == 0,
        }

    def oracle_beaten_by(self) -> list[str]:
        """Policies that met the objective, or the oracle's attainment, with fewer GPU-hours
        than the oracle (empty when the oracle bounds them all, as it should)."""
        oracle = self.by_name("oracle")
        if oracle is None:
            return []
        objective = self.config.slo_objective
        return [
            r.name
            for r in self.results
            if r.name != "oracle"
            and (r.slo_attainment >= objective or r.slo_attainment >= oracle.slo_attainment)
            and r.gpu_hours < oracle.gpu_hours
        ]

    def to_json_dict(self) -> dict[str, Any]:
        best, oracle = self.best_baseline(), self.by_name("oracle")
        policies = []
        for result in self.results:
            entry = result.to_json_dict()
            entry["gpu_hours_vs_best_baseline"] = (
                None if best is None or best.gpu_hours <= 0 else round(result.gpu_hours / best.gpu_hours, 4)
            )
            entry["gpu_hours_vs_oracle"] = (
                None
                if oracle is None or oracle.gpu_hours <= 0
                else round(result.gpu_hours / oracle.gpu_hours, 4)
            )
            policies.append(entry)
        scenario = self.scenario
        return {
            "name": scenario.name,
            "trace": scenario.source,
            "rate_scale": scenario.rate_scale,
            "start_seconds": scenario.start_seconds,
            "duration_seconds": round(self.trace.duration_seconds, 3),
            "requests": len(self.trace),
            "deployment": str(scenario.deployment),
            "slo_ttft_p95_seconds": self.config.slo_ttft_p95_seconds,
            "slo_objective": self.config.slo_objective,
            "best_baseline": None if best is None else best.name,
            "targets": self.targets(),
            "oracle_beaten_by": self.oracle_beaten_by(),
            "policies": policies,
        }


def prepare(scenario: Scenario) -> PreparedScenario:
    """Read the manifest and the trace (all input errors surface here, before any run)."""
    setup = load_deployment(scenario.deployment, f"scenario {scenario.name}: deployment")
    if scenario.trace is not None:
        trace = read_trace(
            scenario.trace,
            rate_scale=scenario.rate_scale,
            duration_seconds=scenario.duration_seconds,
            seed=scenario.seed,
            start_seconds=scenario.start_seconds,
        )
    else:
        assert scenario.generator is not None
        trace = generate(
            scenario.generator, scenario.duration_seconds, rate_scale=scenario.rate_scale, seed=scenario.seed
        )
    config = FleetConfig(
        model=setup.model,
        slo_ttft_p95_seconds=scenario.slo_ttft_p95_seconds or setup.slo_ttft_p95_seconds,
        slo_itl_p95_seconds=setup.slo_itl_p95_seconds,
        slo_objective=scenario.slo_objective or setup.slo_objective,
        max_replicas=setup.max_replicas,
        step_seconds=scenario.step_seconds,
        seed=scenario.seed,
    )
    return PreparedScenario(scenario, setup, trace, config)


def run_one(prepared: PreparedScenario, name: str) -> PolicyResult:
    """One policy on one scenario (a picklable unit of work for a process pool)."""
    resource = prepared.setup.resource
    return run_policy(name, prepared.trace, prepared.config, lambda: llmscale_policy_for(resource))


def run_scenario(
    prepared: PreparedScenario,
    policies: tuple[str, ...] = POLICIES,
    on_policy: Callable[[str], None] | None = None,
) -> ScenarioResult:
    outcome = ScenarioResult(prepared.scenario, prepared.trace, prepared.config)
    for name in policies:
        if on_policy is not None:
            on_policy(name)
        outcome.results.append(run_one(prepared, name))
    return outcome


def run_all(
    prepared: list[PreparedScenario],
    policies: tuple[str, ...],
    jobs: int = 1,
    on_done: Callable[[str, str], None] | None = None,
) -> list[ScenarioResult]:
    """Every (scenario, policy) pair, in `jobs` processes; results in suite and policy order.

    The slow searches (oracle, tuned) go first so that the pool's tail is short."""
    outcomes = [ScenarioResult(item.scenario, item.trace, item.config) for item in prepared]
    pairs = [(index, name) for index in range(len(prepared)) for name in policies]
    cost = {"oracle": 0, "hpa-tuned": 1, "kpa-tuned": 1, "keda-tuned": 1}
    pairs.sort(key=lambda pair: (cost.get(pair[1], 2), -len(prepared[pair[0]].trace)))
    found: dict[tuple[int, str], PolicyResult] = {}
    if jobs <= 1:
        for index, name in pairs:
            found[(index, name)] = run_one(prepared[index], name)
            if on_done is not None:
                on_done(prepared[index].scenario.name, name)
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(run_one, prepared[index], name): (index, name) for index, name in pairs}
            for future in as_completed(futures):
                index, name = futures[future]
                found[(index, name)] = future.result()
                if on_done is not None:
                    on_done(prepared[index].scenario.name, name)
    for index, outcome in enumerate(outcomes):
        outcome.results = [found[(index, name)] for name in policies]
    return outcomes

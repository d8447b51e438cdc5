"""The oracle is a bound: on a small suite of real traffic shapes no policy meets the SLO
objective, or reaches the oracle's attainment, with fewer GPU-hours than the oracle."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmscale.sim.backtest.run import POLICIES, prepare, run_all
from llmscale.sim.backtest.suite import Scenario
from llmscale.sim.oracle import attempt

REPO = Path(__file__).resolve().parents[3]
TRACES = REPO / ".." / "shared" / "traces"
H100 = REPO / "suites" / "deployments" / "llama-8b-h100.yaml"
LONG = REPO / "suites" / "deployments" / "llama-8b-h100-long-context.yaml"

SMALL_SUITE = [
    Scenario("code-burst", H100, trace=TRACES / "AzureLLMInferenceTrace_code.csv", rate_scale=2.0,
             start_seconds=400.0, duration_seconds=600.0),
    Scenario("conv-smooth", H100, trace=TRACES / "AzureLLMInferenceTrace_conv.csv", rate_scale=3.0,
             duration_seconds=500.0),
    Scenario("long-context", LONG, trace=TRACES / "synthetic_trace.jsonl", duration_seconds=400.0),
    Scenario("sparse", H100, generator="sparse-developer", rate_scale=2.0, duration_seconds=5400.0),
]  # fmt: skip


@pytest.fixture(scope="module")
def outcomes() -> list:  # type: ignore[type-arg]
    if not TRACES.is_dir():
        pytest.skip(f"the shared traces are not at {TRACES} (see docs/simulator.md)")
    return run_all([prepare(scenario) for scenario in SMALL_SUITE], POLICIES)


@pytest.mark.parametrize("index", range(len(SMALL_SUITE)), ids=[s.name for s in SMALL_SUITE])
def test_no_policy_beats_the_oracle(outcomes: list, index: int) -> None:  # type: ignore[type-arg]
    outcome = outcomes[index]
    oracle = outcome.by_name("oracle")
    objective = outcome.config.slo_objective
    assert outcome.oracle_beaten_by() == []
    for result in outcome.results:
        if result.name == "oracle":
            continue
        as_good = result.slo_attainment >= objective or result.slo_attainment >= oracle.slo_attainment
        assert not (as_good and result.gpu_hours < oracle.gpu_hours), (
            f"{result.name} reached {result.slo_attainment:.4f} with {result.gpu_hours:.3f} GPU-h; "
            f"oracle {oracle.slo_attainment:.4f} with {oracle.gpu_hours:.3f} GPU-h"
        )


def test_the_oracle_aims_at_the_objective_not_beyond(outcomes: list) -> None:  # type: ignore[type-arg]
    # Packing 30 % tighter than the oracle's choice must either miss the target or save nothing:
    # otherwise the oracle bought attainment beyond the objective with surplus replicas.
    for outcome in outcomes:
        oracle = outcome.by_name("oracle")
        goal = min(outcome.config.slo_objective, oracle.slo_attainment)
        tighter = attempt(outcome.trace, outcome.config, oracle.parameters["packing"] * 1.3)
        assert tighter.slo_attainment < goal or tighter.gpu_hours >= oracle.gpu_hours, outcome.scenario.name

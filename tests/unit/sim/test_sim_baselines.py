"""Baselines as a platform team runs them: planned targets, the HPA's unready-pod rule, KEDA's
tolerance on the raw ratio, and the hindsight-tuned sweep's choice."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmscale.sim.capacity import PRIOR_GENERATION_TOKENS, PRIOR_PROMPT_TOKENS, planned_capacity_rps
from llmscale.sim.fleet import FleetConfig, make_context
from llmscale.sim.perfmodel import ReplicaPerformanceModel
from llmscale.sim.policies.common import concurrency_at
from llmscale.sim.policies.hpa import HPAController, HPAPolicy
from llmscale.sim.results import PolicyResult
from llmscale.sim.runner import better
from llmscale.sim.traces import Trace


@pytest.fixture(scope="module")
def h100_8b() -> ReplicaPerformanceModel:
    return ReplicaPerformanceModel.for_deployment("llama-3-8b", "H100-80GB")


def _trace(prompt: int, output: int) -> Trace:
    return Trace(
        "t", np.arange(10.0), np.full(10, prompt, np.int64), np.full(10, output, np.int64), "generic"
    )


def test_planned_capacity_is_the_prior_lengths_saturation_times_075(h100_8b: ReplicaPerformanceModel) -> None:
    saturation = h100_8b.saturation_requests_per_second(1000.0, 200.0)
    assert (PRIOR_PROMPT_TOKENS, PRIOR_GENERATION_TOKENS) == (1000.0, 200.0)
    assert planned_capacity_rps(h100_8b) == pytest.approx(0.75 * saturation)


def test_targets_do_not_depend_on_the_traces_lengths(h100_8b: ReplicaPerformanceModel) -> None:
    config = FleetConfig(model=h100_8b)
    targets = []
    for trace in (_trace(100, 20), _trace(15_000 // 4, 900)):
        policy = HPAPolicy()
        context = make_context(config, trace, policy)
        assert (context.mean_input_tokens, context.mean_output_tokens) == (1000.0, 200.0)
        policy.prepare(context)
        targets.append(policy.target_running_per_replica)
    expected = concurrency_at(h100_8b, planned_capacity_rps(h100_8b), 1000.0, 200.0)
    assert targets == [pytest.approx(expected), pytest.approx(expected)]


def test_hpa_holds_when_unready_pods_flip_the_direction() -> None:
    hpa = HPAController()
    # 4 pods, 2 ready, target 10 running per pod. Ready pods average 15 (ratio 1.5, scale up);
    # counting the 2 unready pods as 0: 30 / 4 = 7.5 per pod, ratio 0.75 -> direction flips: hold 4.
    assert hpa.pods_metric_desired(current=4, ready=2, total=30.0, target_per_pod=10.0) == 4
    # Ready pods average 30 (ratio 3): with the unready at 0, 60 / 4 = 15, ratio 1.5 -> ceil(1.5 x 4) = 6.
    assert hpa.pods_metric_desired(current=4, ready=2, total=60.0, target_per_pod=10.0) == 6
    # No unready pods: plain ceil(ratio x ready): 2 x 1.5 = 3.
    assert hpa.pods_metric_desired(current=2, ready=2, total=30.0, target_per_pod=10.0) == 3
    # Within tolerance (ratio 1.05): hold.
    assert hpa.pods_metric_desired(current=2, ready=2, total=21.0, target_per_pod=10.0) == 2


def test_keda_tolerance_applies_to_the_raw_ratio() -> None:
    hpa = HPAController()
    # 3 replicas, threshold 5, 16 waiting: raw ratio 16 / 15 = 1.067 <= 1.1 -> hold 3 (the rounded
    # ratio ceil(16 / 5) / 3 = 4 / 3 would have scaled to 4).
    assert hpa.external_average_desired(current=3, total=16.0, target_per_pod=5.0) == 3
    # 20 waiting: ratio 1.33 -> ceil(20 / 5) = 4.
    assert hpa.external_average_desired(current=3, total=20.0, target_per_pod=5.0) == 4


def _result(name: str, attainment: float, gpu_hours: float) -> PolicyResult:
    return PolicyResult(name, 100, attainment, 0.1, gpu_hours, 0, 0, 0)


def test_tuned_choice_is_the_cheapest_meeting_the_objective_else_the_best_attainment() -> None:
    cheap_miss, meets, meets_cheaper = (
        _result("a", 0.98, 1.0),
        _result("b", 0.992, 5.0),
        _result("c", 0.995, 4.0),
    )
    assert better(meets, cheap_miss, 0.99)  # meeting beats missing, whatever the cost
    assert better(meets_cheaper, meets, 0.99)  # both meet: the cheaper
    assert not better(cheap_miss, meets_cheaper, 0.99)
    # Nobody meets 0.999: the highest attainment, then the cheaper.
    assert better(meets_cheaper, meets, 0.999)
    assert better(dataclasses.replace(meets_cheaper, gpu_hours=3.0), meets_cheaper, 0.999)

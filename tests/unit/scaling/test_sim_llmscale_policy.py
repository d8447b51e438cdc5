"""The simulator adapter: capacity prior from the performance model, observation translation."""

from __future__ import annotations

import json

import pytest

from llmscale.scaling import Strategy, demand
from llmscale.sim.llmscale_policy import LLMScalePolicy, capacity_prior, inputs_from_observation
from llmscale.sim.perfmodel import ReplicaPerformanceModel
from llmscale.sim.policy import FleetObservation, SimContext, SimPolicy

MODEL = "meta-llama/Meta-Llama-3-8B"


@pytest.fixture(scope="module")
def h100() -> ReplicaPerformanceModel:
    return ReplicaPerformanceModel.for_deployment(MODEL, "H100-80GB")


def _context(model: ReplicaPerformanceModel, **overrides: object) -> SimContext:
    values: dict[str, object] = {
        "model": model,
        "slo_ttft_p95_seconds": 1.0,
        "slo_itl_p95_seconds": None,
        "slo_objective": 0.99,
        "cold_start_seconds": 45.0,
        "gpu_price_per_hour_usd": 2.5,
        "min_replicas": 0,
        "max_replicas": 16,
        "replica_capacity_rps": 20.0,
        "mean_input_tokens": 1155.0,
        "mean_output_tokens": 211.0,
    }
    values.update(overrides)
    return SimContext(**values)  # type: ignore[arg-type]


def _observation(**overrides: object) -> FleetObservation:
    values: dict[str, object] = {
        "now": 100.0,
        "current_replicas": 1,
        "ready_replicas": 1,
        "request_rate_rps": 5.0,
        "prompt_tokens_rate": 5 * 1155.0,
        "generation_tokens_rate": 5 * 211.0,
        "num_requests_waiting": 0.0,
        "num_requests_running": 4.0,
        "kv_cache_usage": 0.1,
        "ttft_p95_seconds": 0.2,
        "itl_p95_seconds": 0.02,
        "gateway_arrivals_rps": 5.0,
        "gateway_queue_depth": 0,
        "metrics_available": True,
        "cold_start_p50_seconds": None,
        "cold_start_p95_seconds": None,
    }
    values.update(overrides)
    return FleetObservation(**values)  # type: ignore[arg-type]


def test_capacity_prior_reproduces_the_saturation_rate(h100: ReplicaPerformanceModel) -> None:
    from llmscale.scaling import ScalingPolicy

    for prompt, generation in [(202, 179), (1155, 211), (2048, 28)]:
        prior = capacity_prior(h100, prompt, generation, replica_capacity_rps=10.0)
        policy = ScalingPolicy(
            capacity_prompt_tokens_per_second=prior["capacity_prompt_tokens_per_second"],
            capacity_generation_tokens_per_second=prior["capacity_generation_tokens_per_second"],
        )
        saturation = h100.saturation_requests_per_second(prompt, generation)
        assert 1 / demand.work_per_request(policy, prompt, generation) == pytest.approx(saturation, rel=1e-6)
        assert prior["target_utilization"] == pytest.approx(min(1.0, 10.0 / saturation))


def test_policy_satisfies_the_protocol_and_prepares_from_context(h100: ReplicaPerformanceModel) -> None:
    policy = LLMScalePolicy()
    assert isinstance(policy, SimPolicy)
    assert policy.name == "llmscale"
    policy.prepare(_context(h100))
    assert policy.policy.strategy is Strategy.AUTO
    assert policy.policy.max_replicas == 16
    assert policy.policy.slo_ttft_p95_seconds == 1.0
    assert policy.policy.cold_start_seconds == pytest.approx(h100.cold_start_seconds)
    assert policy.tick_seconds == policy.policy.decision_interval_seconds


def test_decide_keeps_state_between_calls(h100: ReplicaPerformanceModel) -> None:
    policy = LLMScalePolicy()
    policy.prepare(_context(h100))
    replicas = [policy.decide(_observation(now=100.0 + 5 * step)) for step in range(20)]
    assert all(1 <= count <= 16 for count in replicas)
    assert policy.state.last_decision_time == pytest.approx(195.0)
    json.dumps(policy.state.to_dict())  # plain JSON even though the simulator uses numpy


def test_held_request_at_zero_is_an_activation_request() -> None:
    inputs = inputs_from_observation(
        _observation(
            current_replicas=0,
            ready_replicas=0,
            request_rate_rps=0.0,
            metrics_available=False,
            gateway_queue_depth=2,
            gateway_arrivals_last_tick=2,
        )
    )
    assert inputs.activation_requested
    assert inputs.gateway_queue_depth == 2


def test_overrides_win_over_the_context(h100: ReplicaPerformanceModel) -> None:
    policy = LLMScalePolicy(strategy=Strategy.SCALE_TO_ZERO, idle_window_seconds=30.0)
    policy.prepare(_context(h100))
    assert policy.policy.strategy is Strategy.SCALE_TO_ZERO
    assert policy.policy.idle_window_seconds == 30.0

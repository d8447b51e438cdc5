"""`policy_from_spec`: one translation from an LLMDeployment to the core's policy, for the operator
and the simulator alike; defaults from `llmscale.api.defaults` alone; DryRun inside `decide`."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest

from llmscale.api import LLMDeployment, defaults
from llmscale.controller.autoscaling.policy import policy_for
from llmscale.controller.autoscaling.settings import AutoscalerSettings
from llmscale.errors import UserInputError
from llmscale.planner.perfmodel import ReplicaPerformanceModel
from llmscale.scaling import (
    DecisionInputs,
    PolicySettings,
    ScalerState,
    ScalingPolicy,
    Strategy,
    decide,
    demand,
    policy_for_resource,
    policy_from_spec,
)
from llmscale.sim.llmscale_policy import LLMScalePolicy
from llmscale.sim.policy import SimContext

MODEL = "meta-llama/Meta-Llama-3-8B"


def body(**scaling: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "chat", "namespace": "ns"},
        "spec": {
            "model": {"name": MODEL},
            "resources": {"gpu": {"product": "H100-80GB"}},
            "scaling": {"slo": {"ttftP95": "1s"}, **scaling},
        },
    }


def resource(**scaling: Any) -> LLMDeployment:
    return LLMDeployment.from_body(body(**scaling))


def context(model: ReplicaPerformanceModel, mean_in: float, mean_out: float) -> SimContext:
    return SimContext(
        model=model,
        slo_ttft_p95_seconds=1.0,
        slo_itl_p95_seconds=None,
        slo_objective=0.99,
        cold_start_seconds=45.0,
        gpu_price_per_hour_usd=2.5,
        min_replicas=0,
        max_replicas=16,
        replica_capacity_rps=20.0,
        mean_input_tokens=mean_in,
        mean_output_tokens=mean_out,
    )


def test_scaling_policy_defaults_are_the_apis() -> None:
    policy = ScalingPolicy()
    assert policy.strategy.value == defaults.SCALING_STRATEGY == "Auto"
    assert policy.max_replicas == defaults.MAX_REPLICAS == 8
    assert policy.slo_ttft_p95_seconds == 2.0  # "2s"
    assert policy.slo_itl_p95_seconds == pytest.approx(0.1)  # "100ms"
    assert policy.decision_interval_seconds == defaults.DECISION_INTERVAL_SECONDS
    assert policy.target_utilization == defaults.TARGET_UTILIZATION == 0.75
    assert AutoscalerSettings().interval_seconds == defaults.DECISION_INTERVAL_SECONDS
    assert demand.DEFAULT_PROMPT_TOKENS == defaults.PRIOR_PROMPT_TOKENS == 1000.0
    assert demand.DEFAULT_GENERATION_TOKENS == defaults.PRIOR_GENERATION_TOKENS == 200.0


def test_capacity_prior_comes_from_the_perf_model_at_the_constant_lengths() -> None:
    policy = policy_from_spec(resource().spec, PolicySettings())
    perf = ReplicaPerformanceModel.for_deployment(MODEL, "H100-80GB")
    saturation = perf.saturation_requests_per_second(1000.0, 200.0)
    # One 1000/200-token request costs exactly 1 / saturation replica-seconds.
    assert 1 / demand.work_per_request(policy, 1000.0, 200.0) == pytest.approx(saturation, rel=1e-6)
    assert policy.target_utilization == 0.75
    assert policy.cold_start_seconds == pytest.approx(perf.cold_start_seconds)
    assert policy.gpus_per_replica == 1
    assert policy.slo_ttft_p95_seconds == 1.0
    hinted = policy_from_spec(resource(capacityHint=10.0).spec, PolicySettings())
    assert hinted.target_utilization == pytest.approx(10.0 / saturation)


def test_quantisation_and_tensor_parallel_change_the_prior() -> None:
    plain = policy_from_spec(resource().spec, PolicySettings())
    spec = body()
    spec["spec"]["resources"]["gpu"]["count"] = 2
    tp2 = policy_from_spec(LLMDeployment.from_body(spec).spec, PolicySettings())
    assert tp2.gpus_per_replica == 2
    assert tp2.capacity_prompt_tokens_per_second > plain.capacity_prompt_tokens_per_second


def test_unknown_model_keeps_the_default_capacity() -> None:
    spec = body()
    spec["spec"]["model"]["name"] = "acme/private-model"
    policy = policy_from_spec(LLMDeployment.from_body(spec).spec, PolicySettings())
    assert policy.capacity_prompt_tokens_per_second == defaults.CAPACITY_PROMPT_TOKENS_PER_SECOND
    assert policy.cold_start_seconds == defaults.COLD_START_SECONDS


def test_the_simulator_never_reads_the_traces_lengths() -> None:
    """The bug of issue 11: the simulator fitted its prior to the trace's own mean lengths."""
    perf = ReplicaPerformanceModel.for_deployment(MODEL, "H100-80GB")
    short, long = LLMScalePolicy(), LLMScalePolicy()
    short.prepare(context(perf, 200.0, 100.0))
    long.prepare(context(perf, 12_000.0, 300.0))
    assert short.policy == long.policy


def test_operator_and_simulator_build_the_same_policy_from_one_manifest() -> None:
    settings = AutoscalerSettings(
        interval_seconds=7.0, metrics_port=None, overrides={"idle_window_seconds": 30.0}
    )
    manifest = body(strategy="ScaleToZero", maxReplicas=5)
    manifest["metadata"]["annotations"] = {"llmscale.dev/scaling-overrides": '{"hysteresis": 0.2}'}
    operator = policy_for(manifest, settings)
    simulated = LLMScalePolicy(
        deployment=LLMDeployment.from_body(manifest), settings=settings.policy_settings()
    )
    perf = ReplicaPerformanceModel.for_deployment(MODEL, "H100-80GB")
    simulated.prepare(context(perf, 500.0, 50.0))
    assert simulated.policy == operator
    assert operator.decision_interval_seconds == 7.0 == simulated.tick_seconds
    assert operator.idle_window_seconds == 30.0 and operator.hysteresis == 0.2
    assert operator.strategy is Strategy.SCALE_TO_ZERO and operator.max_replicas == 5


def test_the_decision_interval_is_not_a_per_deployment_override() -> None:
    with pytest.raises(UserInputError, match="decision_interval_seconds"):
        PolicySettings(overrides={"decision_interval_seconds": 1.0})
    manifest = body()
    manifest["metadata"]["annotations"] = {
        "llmscale.dev/scaling-overrides": '{"decision_interval_seconds": 1}'
    }
    with pytest.raises(UserInputError, match=r"annotation llmscale\.dev/scaling-overrides"):
        policy_for_resource(LLMDeployment.from_body(manifest), PolicySettings())


def test_a_body_the_api_rejects_is_one_line_naming_field_and_value() -> None:
    bad = body(maxReplicas=0)
    with pytest.raises(UserInputError) as caught:
        policy_for(bad, AutoscalerSettings(metrics_port=None))
    message = str(caught.value)
    assert "\n" not in message
    assert "spec.scaling.maxReplicas" in message and "0" in message


def test_dry_run_decides_and_says_it_is_not_applied() -> None:
    policy = policy_from_spec(resource(mode="DryRun", strategy="Autoscaled").spec, PolicySettings())
    assert policy.dry_run
    state = ScalerState()
    inputs = DecisionInputs(
        current_replicas=1,
        ready_replicas=1,
        request_rate_rps=200.0,
        prompt_tokens_per_second=200_000.0,
        generation_tokens_per_second=40_000.0,
        gateway_arrivals_rps=200.0,
    )
    decision = decide(inputs, policy, state, 1000.0)
    active = decide(inputs, dataclasses.replace(policy, dry_run=False), state, 1000.0)
    assert decision.dry_run and not active.dry_run
    assert decision.desired_replicas == active.desired_replicas > 1  # the same decision...
    assert decision.replicas_to_apply(1) == 1  # ...not applied
    assert active.replicas_to_apply(1) == active.desired_replicas


def test_the_operator_loads_neither_the_simulator_nor_numpy() -> None:
    code = (
        "import sys; import llmscale.controller.cli, llmscale.controller.autoscaling.handlers, "
        "llmscale.controller.autoscaling.cluster, llmscale.metrics.prometheus; "
        "print(sorted(m for m in sys.modules if m == 'numpy' or m.startswith('llmscale.sim')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"

"""Pure parts of the scaling loop: cold start, cost, settings, deletion costs, the idle guard."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from llmscale.controller.autoscaling.cluster import (
    UNKNOWN_IN_FLIGHT_COST,
    deletion_costs,
    in_flight_from_metrics,
)
from llmscale.controller.autoscaling.gather import (
    WorkloadSnapshot,
    build_inputs,
    metrics_usable,
)
from llmscale.controller.autoscaling.memory import LoopMemory
from llmscale.controller.autoscaling.settings import AutoscalerSettings, add_cli_arguments, settings_from_args
from llmscale.errors import UserInputError
from llmscale.metrics import DeploymentMetrics
from llmscale.scaling import Decision, ScalerState, Strategy
from llmscale.scaling.coldstart import ColdStartTracker, pod_cold_start_seconds
from llmscale.scaling.core import guard
from llmscale.scaling.cost import CostTracker


def pod(uid: str, created: str, ready: str | None, restarts: int = 0) -> dict[str, object]:
    conditions = [] if ready is None else [{"type": "Ready", "status": "True", "lastTransitionTime": ready}]
    return {
        "metadata": {"uid": uid, "creationTimestamp": created},
        "status": {"conditions": conditions, "containerStatuses": [{"restartCount": restarts}]},
    }


def test_cold_start_from_pod_conditions() -> None:
    assert pod_cold_start_seconds(pod("a", "2026-01-01T00:00:00Z", "2026-01-01T00:01:15Z")) == 75.0
    assert pod_cold_start_seconds(pod("b", "2026-01-01T00:00:00Z", None)) is None
    assert (
        pod_cold_start_seconds(pod("c", "2026-01-01T00:00:00Z", "2026-01-01T00:09:00Z", restarts=1)) is None
    )


def test_cold_start_tracker_counts_each_pod_once_and_round_trips() -> None:
    tracker = ColdStartTracker()
    pods = [pod(str(i), "2026-01-01T00:00:00Z", f"2026-01-01T00:00:{10 + i:02d}Z") for i in range(10)]
    assert len(tracker.observe(pods)) == 10
    assert tracker.observe(pods) == []
    assert tracker.p50_seconds == pytest.approx(14.5)
    assert tracker.p95_seconds == pytest.approx(18.55)
    again = ColdStartTracker.from_dict(tracker.to_dict())
    assert (
        again.to_status() == tracker.to_status() == {"p50Seconds": 14.5, "p95Seconds": 18.55, "samples": 10}
    )
    assert again.observe(pods) == []


def test_cost_integrates_and_ignores_long_gaps() -> None:
    cost = CostTracker()
    cost.observe(0.0, 2, 4, 5, 3.0)
    cost.observe(1800.0, 2, 4, 5, 3.0)  # half an hour at 2 replicas x 4 GPUs (> 300 s gap: skipped)
    assert cost.gpu_hours == 0.0
    for t in range(1800, 1800 + 3600 + 1, 60):
        cost.observe(float(t), 2, 4, 5, 3.0)
    assert cost.gpu_hours == pytest.approx(8.0)
    assert cost.gpu_hours_saved == pytest.approx(12.0)
    assert cost.to_status()["dollarsPerHour"] == 24.0
    assert CostTracker.from_dict(cost.to_dict()).gpu_hours == pytest.approx(8.0)


def test_in_flight_and_deletion_costs() -> None:
    text = (
        '# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name="m"} 3.0\n'
        '# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name="m"} 2.0\n'
    )
    assert in_flight_from_metrics(text) == 5.0
    assert in_flight_from_metrics("# nothing\n") is None
    assert deletion_costs({"busy": 5.0, "idle": 0.0, "unknown": None}) == {
        "busy": 5,
        "idle": 0,
        "unknown": UNKNOWN_IN_FLIGHT_COST,
    }


def test_settings_flags_env_and_bad_input() -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(
        ["--scaling-interval", "2", "--scaling-overrides", '{"idle_window_seconds": 10}']
    )
    settings = settings_from_args(args, environ={"LLMSCALE_PROMETHEUS_URL": "http://127.0.0.1:1"})
    assert settings.interval_seconds == 2.0
    assert settings.prometheus_url == "http://127.0.0.1:1"
    assert settings.overrides == {"idle_window_seconds": 10.0}
    with pytest.raises(UserInputError, match="bogus"):
        settings_from_args(parser.parse_args(["--scaling-overrides", '{"bogus": 1}']), environ={})
    with pytest.raises(UserInputError, match="interval_seconds"):
        AutoscalerSettings(interval_seconds=0)
    with pytest.raises(UserInputError, match="LLMSCALE_SCALING_INTERVAL"):
        AutoscalerSettings.from_env({"LLMSCALE_SCALING_INTERVAL": "fast"})


def test_gateway_metrics_urls_from_flags_and_env() -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    args = parser.parse_args(
        ["--gateway-metrics-url", "http://gw-a:8080/", "--gateway-metrics-url", "http://gw-b:8080"]
    )
    settings = settings_from_args(args, environ={})
    assert settings.gateway_metrics_urls == ("http://gw-a:8080", "http://gw-b:8080")
    assert settings.policy_settings().gateway_read_directly is True
    assert AutoscalerSettings().policy_settings().gateway_read_directly is False
    env = AutoscalerSettings.from_env({"LLMSCALE_GATEWAY_METRICS_URLS": "http://a:1, http://b:2"})
    assert env.gateway_metrics_urls == ("http://a:1", "http://b:2")
    with pytest.raises(UserInputError, match="LLMSCALE_GATEWAY_METRICS_URLS: 'gw:8080'"):
        AutoscalerSettings.from_env({"LLMSCALE_GATEWAY_METRICS_URLS": "gw:8080"})
    with pytest.raises(UserInputError, match="--gateway-metrics-url: 'ftp://gw'"):
        settings_from_args(parser.parse_args(["--gateway-metrics-url", "ftp://gw"]), environ={})


def test_the_direct_gateway_read_reaches_the_core_as_the_recent_rate() -> None:
    metrics = DeploymentMetrics("ns", "d", gateway_arrivals_rps=2.0, gateway_recent_arrivals_rps=9.5)
    inputs = _inputs(metrics)
    assert inputs.gateway_arrivals_rps == 2.0  # type: ignore[attr-defined]
    assert inputs.gateway_recent_arrivals_rps == 9.5  # type: ignore[attr-defined]
    assert _inputs(DeploymentMetrics("ns", "d")).gateway_recent_arrivals_rps is None  # type: ignore[attr-defined]


def _decision(replicas: int, valid: bool = True) -> Decision:
    return Decision(replicas, Strategy.SCALE_TO_ZERO, "IdleProven", "idle", valid, None, ScalerState())


def _inputs(metrics: DeploymentMetrics | None, prometheus_ok: bool = True) -> object:
    return build_inputs(
        metrics,
        WorkloadSnapshot(1, 1),
        prometheus_ok=prometheus_ok,
        cold_start_p50_seconds=None,
        cold_start_p95_seconds=None,
        activation_requested=False,
    )


def test_guard_never_zero_without_positive_proof() -> None:
    """The gather marks what Prometheus lacked; the core's guard (not the loop) keeps one replica."""
    partial = DeploymentMetrics("ns", "d", request_rate_rps=0.0, missing=frozenset({"gateway_arrivals_rps"}))
    inputs = _inputs(partial)
    assert "gateway_arrivals_rps" in inputs.missing_demand_signals  # type: ignore[attr-defined]
    guarded = guard(_decision(0), inputs)  # type: ignore[arg-type]
    assert (guarded.desired_replicas, guarded.reason) == (1, "IdleNotProven")
    idle = DeploymentMetrics(
        "ns",
        "d",
        request_rate_rps=0.0,
        num_requests_waiting=0.0,
        num_requests_running=0.0,
        gateway_arrivals_rps=0.0,
        gateway_queue_depth=0.0,
    )
    assert guard(_decision(0), _inputs(idle)).desired_replicas == 0  # type: ignore[arg-type]
    assert guard(_decision(0), _inputs(idle, prometheus_ok=False)).desired_replicas == 1  # Prometheus down
    assert guard(_decision(5, valid=False), _inputs(idle)).desired_replicas == 1  # invalid: hold current
    busy = DeploymentMetrics(
        "ns",
        "d",
        request_rate_rps=0.0,
        num_requests_waiting=0.0,
        num_requests_running=2.0,
        gateway_arrivals_rps=0.0,
        gateway_queue_depth=0.0,
    )
    assert guard(_decision(0), _inputs(busy)).desired_replicas == 1  # type: ignore[arg-type]


def test_metrics_usable_rules() -> None:
    assert metrics_usable(None, 1)[0] is False
    engine_missing = DeploymentMetrics.empty("ns", "d")
    assert metrics_usable(engine_missing, 2)[1] == "NoEngineData"
    assert metrics_usable(engine_missing, 0)[1] == "NoGatewayData"


def test_loop_memory_round_trip_through_status() -> None:
    memory = LoopMemory()
    memory.scale_ups = 3
    memory.record({"time": "t", "replicas": 1, "desiredReplicas": 2, "reason": "LoadAboveCapacity"})
    status = {"scalerState": memory.to_scaler_state(), "lastDecisions": memory.decisions}
    again = LoopMemory.from_status(status)
    assert again.scale_ups == 3 and again.last_desired == 2 and again.last_reason == "LoadAboveCapacity"
    assert LoopMemory.from_status({"scalerState": "garbage"}).scale_ups == 0


def test_fast_state_serialisation_matches_the_core() -> None:
    from llmscale.controller.autoscaling.memory import _state_dict
    from llmscale.scaling import DecisionInputs, ScalingPolicy, decide

    state = ScalerState()
    for step in range(30):
        inputs = DecisionInputs(current_replicas=2, ready_replicas=2, request_rate_rps=float(step % 7))
        state = decide(inputs, ScalingPolicy(), state, 1000.0 + 5 * step).next_state
    assert _state_dict(state) == state.to_dict()
    assert ScalerState.from_dict(_state_dict(state)).to_dict() == state.to_dict()


def test_operator_price_list_and_metrics_host_from_env() -> None:
    from llmscale.controller.autoscaling.policy import policy_for
    from llmscale.controller.autoscaling.settings import AutoscalerSettings

    settings = AutoscalerSettings.from_env(
        {"LLMSCALE_GPU_PRICES": '{"H100-80GB": 1.25}', "LLMSCALE_OPERATOR_METRICS_HOST": "0.0.0.0"}
    )
    assert settings.metrics_host == "0.0.0.0"
    body: dict[str, Any] = {
        "metadata": {"name": "d"},
        "spec": {"model": {"name": "x"}, "resources": {"gpu": {"product": "H100-80GB"}}},
    }
    assert policy_for(body, settings).gpu_price_per_hour_usd == 1.25
    body["spec"]["gpuPricePerHour"] = 3.0  # the spec wins
    assert policy_for(body, settings).gpu_price_per_hour_usd == 3.0
    with pytest.raises(UserInputError, match="LLMSCALE_GPU_PRICES"):
        AutoscalerSettings.from_env({"LLMSCALE_GPU_PRICES": '{"L4": -1}'})


def test_operator_namespaces_scope_the_loop() -> None:
    """With --namespace the loop must list only there (a namespaced Role grants nothing more)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespace", action="append")
    add_cli_arguments(parser)
    scoped = settings_from_args(
        parser.parse_args(["--namespace", "team-a", "--namespace", "team-b"]), environ={}
    )
    assert scoped.namespaces == ("team-a", "team-b")
    assert settings_from_args(parser.parse_args([]), environ={}).namespaces == ()

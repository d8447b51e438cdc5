"""ScalerState survives JSON (the operator keeps it in status) and tolerates garbage."""

from __future__ import annotations

import json

import pytest

from llmscale.scaling import DecisionInputs, ScalerState, ScalingPolicy, decide


def _state_after_traffic() -> ScalerState:
    policy = ScalingPolicy()
    state = ScalerState()
    for step in range(200):
        rps = 10.0 if step % 40 < 30 else 0.0
        inputs = DecisionInputs(
            current_replicas=2,
            ready_replicas=2,
            request_rate_rps=rps,
            prompt_tokens_per_second=rps * 900,
            generation_tokens_per_second=rps * 150,
            ttft_p95_seconds=0.3 if rps else None,
            gateway_arrivals_rps=rps,
        )
        state = decide(inputs, policy, state, step * 5.0).next_state
    return state


def test_round_trip_is_exact() -> None:
    state = _state_after_traffic()
    data = json.loads(json.dumps(state.to_dict()))
    assert ScalerState.from_dict(data).to_dict() == state.to_dict()
    assert len(data["forecast"]["profile"]) == 96


def test_decide_does_not_mutate_its_input_state() -> None:
    state = _state_after_traffic()
    before = json.dumps(state.to_dict(), sort_keys=True)
    decide(
        DecisionInputs(current_replicas=1, ready_replicas=1, request_rate_rps=3.0),
        ScalingPolicy(),
        state,
        5000.0,
    )
    assert json.dumps(state.to_dict(), sort_keys=True) == before


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"version": 99, "forecast": {}},
        {"version": 1, "forecast": "junk", "scaler": {"recommendations": "x", "stable_load": "NaN"}},
        {"version": 1, "capacity": {"sustainable_load_per_replica": float("inf")}},
        {"version": 1, "lastDesiredReplicas": -3, "workload": {"peak_load": True}},
    ],
)
def test_malformed_state_starts_fresh_parts(data: object) -> None:
    state = ScalerState.from_dict(data)  # type: ignore[arg-type]
    assert state.capacity.sustainable_load_per_replica is None
    assert state.last_desired_replicas is None
    assert isinstance(state.scaler.recommendations, list)
    assert state.workload.peak_load == 0.0
    decision = decide(DecisionInputs(current_replicas=1, ready_replicas=1), ScalingPolicy(), state, 0.0)
    assert decision.desired_replicas >= 1

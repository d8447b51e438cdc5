"""The `llmscale` simulator policy: the decision core, unchanged, behind the SimPolicy protocol.

The adapter only translates. `prepare` turns the replica performance model into the plain
capacity numbers `ScalingPolicy` takes (so `llmscale.scaling` never imports the simulator);
`decide` turns a `FleetObservation` into `DecisionInputs`, calls `llmscale.scaling.decide` and
keeps the returned state, exactly as the operator's timer does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from llmscale.scaling import Decision, DecisionInputs, ScalerState, ScalingPolicy, Strategy, decide
from llmscale.sim.perfmodel import ReplicaPerformanceModel
from llmscale.sim.policy import FleetObservation, SimContext


def capacity_prior(
    model: ReplicaPerformanceModel,
    mean_input_tokens: float,
    mean_output_tokens: float,
    replica_capacity_rps: float | None = None,
) -> dict[str, float]:
    """ScalingPolicy capacity fields from the performance model, at the given request lengths.

    Prefill throughput is measured at the reference prompt length (it includes the quadratic
    attention part); decode throughput is what is left of the saturation request time, so that
    one request of the reference lengths costs exactly 1 / saturation rate replica-seconds.
    The target utilisation is the SLO-bound capacity as a share of saturation.
    """
    prompt_tokens = max(1.0, mean_input_tokens)
    generation_tokens = max(1.0, mean_output_tokens)
    saturation_rps = model.saturation_requests_per_second(prompt_tokens, generation_tokens)
    prefill_seconds = model.prefill_compute_seconds(prompt_tokens)
    prompt_tokens_per_second = prompt_tokens / prefill_seconds
    decode_seconds = max(1.0 / saturation_rps - prefill_seconds, 0.05 / saturation_rps)
    generation_tokens_per_second = generation_tokens / decode_seconds
    utilization = 0.75
    if replica_capacity_rps is not None and replica_capacity_rps > 0:
        utilization = min(1.0, max(0.05, replica_capacity_rps / saturation_rps))
    return {
        "capacity_prompt_tokens_per_second": prompt_tokens_per_second,
        "capacity_generation_tokens_per_second": generation_tokens_per_second,
        "target_utilization": utilization,
    }


def inputs_from_observation(
    observation: FleetObservation, tick_seconds: float | None = None
) -> DecisionInputs:
    """`tick_seconds`: when given, the gateway's count since the previous decision becomes
    `gateway_recent_arrivals_rps` (the gateway counts arrivals itself, so the operator can read
    it at any resolution)."""
    at_zero_with_demand = observation.ready_replicas == 0 and (
        observation.gateway_queue_depth > 0 or observation.gateway_arrivals_last_tick > 0
    )
    recent_rps = None
    if tick_seconds is not None and tick_seconds > 0:
        recent_rps = observation.gateway_arrivals_last_tick / tick_seconds
    # float()/int(): the simulator computes with numpy; the state must stay plain JSON.
    return DecisionInputs(
        current_replicas=int(observation.current_replicas),
        ready_replicas=int(observation.ready_replicas),
        request_rate_rps=float(observation.request_rate_rps),
        prompt_tokens_per_second=float(observation.prompt_tokens_rate),
        generation_tokens_per_second=float(observation.generation_tokens_rate),
        num_requests_waiting=float(observation.num_requests_waiting),
        num_requests_running=float(observation.num_requests_running),
        kv_cache_usage=float(observation.kv_cache_usage),
        ttft_p95_seconds=_optional(observation.ttft_p95_seconds),
        itl_p95_seconds=_optional(observation.itl_p95_seconds),
        gateway_arrivals_rps=float(observation.gateway_arrivals_rps),
        gateway_recent_arrivals_rps=recent_rps,
        gateway_queue_depth=int(observation.gateway_queue_depth),
        metrics_available=bool(observation.metrics_available),
        cold_start_p50_seconds=_optional(observation.cold_start_p50_seconds),
        cold_start_p95_seconds=_optional(observation.cold_start_p95_seconds),
        activation_requested=at_zero_with_demand,
    )


def _optional(value: float | None) -> float | None:
    return None if value is None else float(value)


class LLMScalePolicy:
    """`llmscale` in the simulator: strategy Auto (or a fixed one), defaults everywhere else."""

    name = "llmscale"

    def __init__(self, strategy: Strategy = Strategy.AUTO, **overrides: Any) -> None:
        self.strategy = strategy
        self.overrides = overrides
        self.tick_seconds = float(
            overrides.get("decision_interval_seconds", ScalingPolicy.decision_interval_seconds)
        )
        self.policy = ScalingPolicy(strategy=strategy)
        self.state = ScalerState()
        self.decisions: list[tuple[float, Decision]] = []
        self.record_decisions = False

    def prepare(self, context: SimContext) -> None:
        prior = capacity_prior(
            context.model, context.mean_input_tokens, context.mean_output_tokens, context.replica_capacity_rps
        )
        fields: dict[str, Any] = {
            "strategy": self.strategy,
            "min_replicas": context.min_replicas,
            "max_replicas": max(context.max_replicas, 1, context.min_replicas),
            "slo_ttft_p95_seconds": context.slo_ttft_p95_seconds,
            "slo_itl_p95_seconds": context.slo_itl_p95_seconds,
            "slo_objective": context.slo_objective,
            "gpu_price_per_hour_usd": context.gpu_price_per_hour_usd,
            "gpus_per_replica": context.model.gpus,
            # A prior only: the decisions use the measured cold start as soon as there is one.
            "cold_start_seconds": context.model.cold_start_seconds,
            **prior,
        }
        fields.update(self.overrides)
        self.policy = dataclasses.replace(ScalingPolicy(), **fields)
        self.tick_seconds = self.policy.decision_interval_seconds
        self.state = ScalerState()
        self.decisions = []

    def decide(self, observation: FleetObservation) -> int:
        inputs = inputs_from_observation(observation, self.tick_seconds)
        decision = decide(inputs, self.policy, self.state, observation.now)
        self.state = decision.next_state
        if self.record_decisions:
            self.decisions.append((observation.now, decision))
        return decision.desired_replicas

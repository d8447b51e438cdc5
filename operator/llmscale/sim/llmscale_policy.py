"""The `llmscale` simulator policy: the operator's policy and decision core behind SimPolicy.

The adapter only translates, exactly as the operator does:
- `prepare` builds the policy with `llmscale.scaling.policy_for_resource` from the simulated
  LLMDeployment (a manifest, or `sim.deployment.default_deployment` for the fleet's model, GPU,
  SLO and bounds): capacity from the planner's performance model at the documented constant
  request lengths, never the trace's own means;
- `decide` turns a `FleetObservation` into `DecisionInputs` with the operator's gather rules,
  calls `llmscale.scaling.decide` and applies `Decision.replicas_to_apply` verbatim.
tests/unit/parity replays one timeline through this and through the operator's loop.
"""

from __future__ import annotations

import dataclasses

from llmscale.api import LLMDeployment
from llmscale.planner.perfmodel import capacity_prior
from llmscale.scaling import (
    Decision,
    DecisionInputs,
    PolicySettings,
    ScalerState,
    ScalingPolicy,
    Strategy,
    decide,
    policy_for_resource,
)
from llmscale.scaling.core import IDLE_PROOF_SIGNALS, metrics_usable
from llmscale.scaling.counter_history import CounterHistory
from llmscale.sim.deployment import default_deployment, with_overrides
from llmscale.sim.observe import PrometheusModel
from llmscale.sim.policy import FleetObservation, SimContext

__all__ = ["LLMScalePolicy", "capacity_prior", "inputs_from_observation"]

_GATEWAY_DEMAND_SIGNALS = frozenset({"gateway_arrivals_rps", "gateway_queue_depth"})
_ENGINE_DEMAND_SIGNALS = IDLE_PROOF_SIGNALS - _GATEWAY_DEMAND_SIGNALS


def inputs_from_observation(
    observation: FleetObservation,
    *,
    direct_arrivals_rps: float | None = None,
    direct_windowed_rps: float | None = None,
    direct_read: bool = False,
) -> DecisionInputs:
    """The operator's gather (controller/autoscaling/gather.build_inputs) on the simulator's view.

    Engine signals exist when an engine was scraped in the window (`metrics_available`), the
    gateway's when Prometheus has its series (`gateway_reporting`). Availability follows the
    operator's rule (`llmscale.scaling.core.metrics_usable`). The gateway's activation request is what a real
    gateway does when it holds a request at zero: `activation_requested` while nothing is Ready
    and requests wait or arrive.

    `direct_read`: the operator reads the gateway's /metrics itself on every tick
    (`metrics.gateway_scrape.GatewayOverlaySource`, the chart's default): the queue depth is the
    one held now, `direct_arrivals_rps` (the scraper's rate over the last decision interval;
    None on the first read) is the recent rate, and `direct_windowed_rps` (its rate over the
    rate window) the windowed one while Prometheus has no gateway series.
    When Prometheus does not answer, the direct read still gives the gateway's signals (the
    engines' are missing) and the inputs are never `metrics_available`: the core adds replicas
    on them, never removes any (the operator's `GatewayReader` path).
    """
    engine_reporting = bool(observation.metrics_available)
    gateway_reporting = bool(observation.gateway_reporting)
    missing = set() if engine_reporting else set(_ENGINE_DEMAND_SIGNALS)
    arrivals_rps = float(observation.gateway_arrivals_rps) if gateway_reporting else None
    queue_depth = int(observation.gateway_queue_depth) if gateway_reporting else 0
    if not gateway_reporting:
        missing |= _GATEWAY_DEMAND_SIGNALS
    if direct_read:
        queue_depth = int(observation.gateway_queue_now)
        missing.discard("gateway_queue_depth")
        if arrivals_rps is None and direct_windowed_rps is not None:
            arrivals_rps = float(direct_windowed_rps)
            missing.discard("gateway_arrivals_rps")
        gateway_reporting = not (missing & _GATEWAY_DEMAND_SIGNALS)
    at_zero_with_demand = observation.ready_replicas == 0 and (
        observation.gateway_queue_depth > 0 or observation.gateway_arrivals_last_tick > 0
    )
    # float()/int(): the simulator computes with numpy; the state must stay plain JSON.
    return DecisionInputs(
        current_replicas=int(observation.current_replicas),
        ready_replicas=int(observation.ready_replicas),
        request_rate_rps=float(observation.request_rate_rps),
        prompt_tokens_per_second=float(observation.prompt_tokens_rate),
        generation_tokens_per_second=float(observation.generation_tokens_rate),
        num_requests_waiting=float(observation.num_requests_waiting),
        num_requests_running=float(observation.num_requests_running),
        kv_cache_usage=float(observation.kv_cache_usage) if engine_reporting else None,
        ttft_p95_seconds=_optional(observation.ttft_p95_seconds),
        itl_p95_seconds=_optional(observation.itl_p95_seconds),
        gateway_arrivals_rps=arrivals_rps,
        gateway_queue_depth=queue_depth,
        gateway_recent_arrivals_rps=None if direct_arrivals_rps is None else float(direct_arrivals_rps),
        # the operator decides on an unanswered read's direct gateway signals but never calls
        # them usable (controller/autoscaling/gather.build_inputs)
        metrics_available=observation.prometheus_answered
        and metrics_usable(
            int(observation.ready_replicas),
            engine_reporting=engine_reporting,
            gateway_reporting=gateway_reporting,
        ),
        cold_start_p50_seconds=_optional(observation.cold_start_p50_seconds),
        cold_start_p95_seconds=_optional(observation.cold_start_p95_seconds),
        activation_requested=at_zero_with_demand,
        missing_demand_signals=frozenset(missing),
    )


def _optional(value: float | None) -> float | None:
    return None if value is None else float(value)


class LLMScalePolicy:
    """`llmscale` in the simulator: the policy the operator would build for `deployment`.

    Without a deployment, the simulated one is `default_deployment` for the fleet's model, GPU,
    tensor parallel size, SLO and replica bounds (API defaults everywhere else). `strategy`
    replaces spec.scaling.strategy; `overrides` are tunable ScalingPolicy fields, as the
    operator's `--scaling-overrides` (`decision_interval_seconds` is its `--scaling-interval`).
    """

    name = "llmscale"

    def __init__(
        self,
        strategy: Strategy | None = None,
        *,
        deployment: LLMDeployment | None = None,
        settings: PolicySettings | None = None,
        **overrides: float,
    ) -> None:
        settings = settings or PolicySettings()
        interval = overrides.pop("decision_interval_seconds", settings.decision_interval_seconds)
        self.settings = dataclasses.replace(
            settings,
            decision_interval_seconds=float(interval),
            overrides={**settings.overrides, **overrides},
        )
        self.strategy = strategy
        self.deployment = deployment
        self.tick_seconds = self.settings.decision_interval_seconds
        self.policy = ScalingPolicy()
        self.state = ScalerState()
        self.decisions: list[tuple[float, Decision]] = []
        self.record_decisions = False
        self.fixed_replicas: int | None = None
        """Set for a strategy the loop does not own (Warm): reconcile keeps this count, no decisions."""
        self._arrivals_total = 0.0  # the gateway's arrivals counter
        self._readings = CounterHistory(0.0)  # the operator's direct reads of it

    def resource(self, context: SimContext) -> LLMDeployment:
        """The simulated LLMDeployment for this run."""
        resource = self.deployment
        if resource is None:
            model = context.model
            resource = default_deployment(
                model.model_name,
                model.gpu_name,
                gpus=model.tensor_parallel_size,
                min_replicas=context.min_replicas or None,
                max_replicas=context.max_replicas,
                slo_ttft_p95_seconds=context.slo_ttft_p95_seconds,
                slo_itl_p95_seconds=context.slo_itl_p95_seconds,
                slo_objective=context.slo_objective,
            )
        if self.strategy is not None:
            resource = with_overrides(resource, strategy=Strategy(self.strategy).value)
        return resource

    def prepare(self, context: SimContext) -> None:
        resource = self.resource(context)
        self.policy = policy_for_resource(resource, self.settings)
        scaling = resource.spec.scaling
        self.fixed_replicas = None if scaling.loop_owned else scaling.fixed_replicas
        self.tick_seconds = self.policy.decision_interval_seconds
        self.state = ScalerState()
        self.decisions = []
        self._arrivals_total = 0.0
        self._readings = CounterHistory(1.5 * max(self.tick_seconds, PrometheusModel().rate_window_seconds))

    def decide(self, observation: FleetObservation) -> int:
        if self.fixed_replicas is not None:
            return self.fixed_replicas  # as in the cluster: the scaling loop does not run
        direct = self.settings.gateway_read_directly
        recent = windowed = None
        self._arrivals_total += float(observation.gateway_arrivals_last_tick)
        if direct:
            # the operator's scraper (metrics.gateway_scrape): read on every tick, Prometheus
            # answering or not (`GatewayReader`)
            self._readings.add(observation.now, float(self._arrivals_total))
            recent = self._readings.rate(self.tick_seconds)
            windowed = self._readings.rate(PrometheusModel().rate_window_seconds)
        inputs = inputs_from_observation(
            observation, direct_arrivals_rps=recent, direct_windowed_rps=windowed, direct_read=direct
        )
        decision = decide(inputs, self.policy, self.state, observation.now)
        self.state = decision.next_state
        if self.record_decisions:
            self.decisions.append((observation.now, decision))
        return decision.replicas_to_apply(inputs.current_replicas)

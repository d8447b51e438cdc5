"""Kubernetes HorizontalPodAutoscaler (autoscaling/v2) and KEDA on top of it.

HPA defaults (kube-controller-manager and autoscaling/v2 behavior): sync every 15 s,
tolerance 0.1, desired = ceil(ready x metric / target), scale-up at most max(+100 %, +4 pods)
per 15 s with no stabilisation, scale-down to the highest recommendation of the last 300 s,
min 1 replica (an HPA cannot scale to zero). Unready (starting) pods follow the replica
calculator of kube-controller-manager: on a scale-up they count as using 0 of the metric, and
when that flips the direction (or lands within tolerance) the HPA holds the current count.

Metric (a documented choice): `vllm:num_requests_running` averaged per pod, target = the
requests in flight on one replica at its planned capacity (Little's law on the replica model at
the prior request lengths of `llmscale.sim.capacity`, the same capacity llmscale is given).
Running requests track load linearly up to the batch limit, unlike KV usage, which for short
ShareGPT-like requests stays low until the replica is far past its latency target.

KEDA defaults: polling 30 s, cooldown 300 s before scaling to zero, trigger on
`vllm:num_requests_waiting` with threshold 5 (production-stack's default), fed to an HPA as an
AverageValue external metric: ratio = total waiting / (5 x current replicas); outside the
tolerance desired = ceil(total waiting / 5), as the HPA computes external per-pod metrics.
Activation 0 -> 1 and "is active" use a second trigger on the gateway (held requests or
arrivals since the last poll), because at zero the engine exports nothing.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from llmscale.sim.policies.common import concurrency_at
from llmscale.sim.policy import FleetObservation, SimContext


@dataclass
class HPAController:
    """The replica-count arithmetic of one HPA, stepped every `sync_seconds`."""

    tolerance: float = 0.1
    scale_down_stabilization_seconds: float = 300.0
    scale_up_percent: float = 100.0
    scale_up_pods: int = 4
    scale_period_seconds: float = 15.0
    min_replicas: int = 1
    max_replicas: int = 64
    _recommendations: deque[tuple[float, int]] = field(default_factory=deque, init=False)

    def recommend(self, now: float, current: int, raw_desired: int) -> int:
        """Apply tolerance was done by the caller; here: stabilisation, rate limits, bounds."""
        raw_desired = max(self.min_replicas, min(self.max_replicas, raw_desired))
        self._recommendations.append((now, raw_desired))
        horizon = now - self.scale_down_stabilization_seconds
        while self._recommendations and self._recommendations[0][0] <= horizon:
            self._recommendations.popleft()
        desired = raw_desired
        if desired < current:
            # Scale down only to the highest recommendation within the window.
            desired = min(current, max(r for _, r in self._recommendations))
        elif desired > current:
            limit = max(
                math.ceil(current * (1 + self.scale_up_percent / 100.0)), current + self.scale_up_pods
            )
            desired = min(desired, limit)
        return max(self.min_replicas, min(self.max_replicas, desired))

    def pods_metric_desired(self, current: int, ready: int, total: float, target_per_pod: float) -> int:
        """desired for a Pods metric averaged over the ready pods (replica calculator, no missing pods).

        Unready pods: on a scale-up they are counted as using nothing; when the ratio recomputed
        that way flips the direction or falls within tolerance, the count is held."""
        if ready <= 0:
            return current
        ratio = (total / ready) / target_per_pod
        unready = max(0, current - ready)
        if not (unready > 0 and ratio > 1.0):
            if abs(1.0 - ratio) <= self.tolerance:
                return current
            return math.ceil(ratio * ready - 1e-9)
        pods = ready + unready
        new_ratio = (total / pods) / target_per_pod
        if abs(1.0 - new_ratio) <= self.tolerance or new_ratio < 1.0:
            return current
        desired = math.ceil(new_ratio * pods - 1e-9)
        return current if desired < current else desired

    def external_average_desired(self, current: int, total: float, target_per_pod: float) -> int:
        """desired for an AverageValue external metric: tolerance on the raw ratio to current."""
        ratio = total / (target_per_pod * max(current, 1))
        if abs(1.0 - ratio) <= self.tolerance:
            return current
        return math.ceil(total / target_per_pod - 1e-9)


@dataclass
class HPAPolicy:
    name: str = "hpa"
    tick_seconds: float = 15.0
    reads_latency_quantiles: bool = False
    target_running_per_replica: float | None = None  # None: concurrency at SLO capacity
    tolerance: float = 0.1
    scale_down_stabilization_seconds: float = 300.0
    min_replicas: int = 1
    max_replicas: int = 64
    controller: HPAController = field(default_factory=HPAController, init=False)

    def prepare(self, context: SimContext) -> None:
        if self.target_running_per_replica is None:
            self.target_running_per_replica = concurrency_at(
                context.model,
                context.replica_capacity_rps,
                context.mean_input_tokens,
                context.mean_output_tokens,
            )
        self.controller = HPAController(
            tolerance=self.tolerance,
            scale_down_stabilization_seconds=self.scale_down_stabilization_seconds,
            min_replicas=self.min_replicas,
            max_replicas=min(self.max_replicas, context.max_replicas),
        )

    def decide(self, observation: FleetObservation) -> int:
        current = observation.current_replicas
        if current == 0:
            return self.min_replicas  # the HPA's minReplicas (>= 1) holds the floor
        if not observation.metrics_available or observation.ready_replicas == 0:
            return current  # no metrics: the HPA keeps the scale
        assert self.target_running_per_replica is not None
        raw = self.controller.pods_metric_desired(
            current,
            observation.ready_replicas,
            observation.num_requests_running,
            self.target_running_per_replica,
        )
        return self.controller.recommend(observation.now, current, raw)


@dataclass
class KEDAPolicy:
    name: str = "keda"
    tick_seconds: float = 15.0  # the HPA sync period; KEDA's own poll is polling_seconds
    reads_latency_quantiles: bool = False
    polling_seconds: float = 30.0
    cooldown_seconds: float = 300.0
    waiting_threshold: float = 5.0
    min_replicas: int = 0  # KEDA's minReplicaCount
    max_replicas: int = 64
    controller: HPAController = field(default_factory=HPAController, init=False)
    _last_poll: float = field(default=-math.inf, init=False)
    _last_active: float = field(default=-math.inf, init=False)
    _arrivals_since_poll: int = field(default=0, init=False)
    _zero: bool = field(default=True, init=False)

    def prepare(self, context: SimContext) -> None:
        self.controller = HPAController(max_replicas=min(self.max_replicas, context.max_replicas))

    def decide(self, observation: FleetObservation) -> int:
        now = observation.now
        current = observation.current_replicas
        self._arrivals_since_poll += observation.gateway_arrivals_last_tick
        if now - self._last_poll >= self.polling_seconds:
            self._last_poll = now
            active = (
                observation.gateway_queue_now > 0
                or self._arrivals_since_poll > 0
                or observation.num_requests_waiting > 0
                or observation.num_requests_running > 0
            )
            self._arrivals_since_poll = 0
            if active:
                self._last_active = now
            if current == 0:
                return 1 if active else 0
            if not active and now - self._last_active >= self.cooldown_seconds and self.min_replicas == 0:
                return 0
        if current == 0:
            return 0
        if not observation.metrics_available or observation.ready_replicas == 0:
            return current
        raw = self.controller.external_average_desired(
            current, observation.num_requests_waiting, self.waiting_threshold
        )
        return self.controller.recommend(now, current, max(raw, 1))  # KEDA, not the HPA, goes to zero

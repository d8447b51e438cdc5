"""Knative Pod Autoscaler (KPA), concurrency mode, with Knative Serving's defaults.

Every tick (2 s) it samples the concurrency the activator and queue-proxies see (requests
running and waiting on the engines plus those the gateway holds; scraped every second, as
Knative's autoscaler does) and averages it over the stable window (60 s) and the panic window
(6 s = 10 % of stable). desired = ceil(average / (target x utilisation)); it panics when the
panic-window desire reaches 200 % of the ready pods, and while panicking never scales down;
panic ends after a full stable window without the panic condition. Scale-down is limited to
halving per tick (max-scale-down-rate 2); scale-up rate 1000. Scale to zero happens after the
stable window saw no traffic plus the 30 s scale-to-zero grace period. The activator wakes a
revision at zero on the first request.

Target concurrency per replica (a documented choice): Knative's default target of 100
in-flight requests suits web containers, not an LLM replica, whose useful concurrency depends
on the model, GPU and request lengths (a Llama-3-8B on an H100 saturates near 100 for
ShareGPT-like lengths but near 20 for 2k-token prompts). An operator deploying an LLM on
Knative tunes `autoscaling.knative.dev/target` to the replica, so the default here is the
concurrency one replica carries at its SLO capacity (Little's law on the replica model, the
same figure the hpa baseline targets, at the prior request lengths of `llmscale.sim.capacity`),
times Knative's default target utilisation 0.7.
Pass `target_concurrency=100` for Knative's untuned default.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from llmscale.sim.observe import PrometheusModel
from llmscale.sim.policies.common import concurrency_at
from llmscale.sim.policy import FleetObservation, SimContext

# Knative's autoscaler scrapes the queue-proxies itself every second and the activator reports
# held requests directly: its own view, not the cluster Prometheus.
KNATIVE_VIEW = PrometheusModel(
    engine_scrape_interval_seconds=1.0,
    gateway_scrape_interval_seconds=1.0,
    rate_window_seconds=2.0,
    evaluation_lag_seconds=0.0,
)


@dataclass
class KPAPolicy:
    name: str = "kpa"
    tick_seconds: float = 2.0
    reads_latency_quantiles: bool = False
    prometheus: PrometheusModel = KNATIVE_VIEW
    stable_window_seconds: float = 60.0
    panic_window_percentage: float = 10.0
    panic_threshold_percentage: float = 200.0
    max_scale_down_rate: float = 2.0
    max_scale_up_rate: float = 1000.0
    scale_to_zero_grace_seconds: float = 30.0
    target_concurrency: float | None = None  # None: concurrency at SLO capacity (see above)
    target_utilisation: float = 0.7
    min_replicas: int = 0
    max_replicas: int = 64
    _samples: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    _panic_until: float | None = field(default=None, init=False)
    _panic_high_water: int = field(default=0, init=False)
    _zero_since: float | None = field(default=None, init=False)

    def prepare(self, context: SimContext) -> None:
        self.max_replicas = min(self.max_replicas, context.max_replicas)
        if self.target_concurrency is None:
            self.target_concurrency = concurrency_at(
                context.model,
                context.replica_capacity_rps,
                context.mean_input_tokens,
                context.mean_output_tokens,
            )

    def _average(self, now: float, window: float) -> float:
        values = [value for at, value in self._samples if at > now - window]
        return sum(values) / len(values) if values else 0.0

    def decide(self, observation: FleetObservation) -> int:
        now = observation.now
        concurrency = observation.gateway_queue_now + (
            observation.num_requests_running + observation.num_requests_waiting
            if observation.metrics_available
            else 0.0
        )
        if observation.gateway_arrivals_last_tick > 0:
            concurrency = max(concurrency, 1.0)  # the activator saw a request
        self._samples.append((now, concurrency))
        while self._samples and self._samples[0][0] <= now - self.stable_window_seconds:
            self._samples.popleft()
        current = observation.current_replicas
        ready = max(observation.ready_replicas, 1)
        per_pod = (self.target_concurrency or 100.0) * self.target_utilisation
        panic_window = self.stable_window_seconds * self.panic_window_percentage / 100.0
        stable_desired = math.ceil(self._average(now, self.stable_window_seconds) / per_pod - 1e-9)
        panic_desired = math.ceil(self._average(now, panic_window) / per_pod - 1e-9)
        if current == 0:
            self._zero_since = None
            return max(self.min_replicas, 1 if concurrency > 0 else 0)  # activator wakes it
        # Rate limits relative to the ready pods.
        up_limit = math.ceil(self.max_scale_up_rate * ready)
        down_limit = math.floor(ready / self.max_scale_down_rate)
        stable_desired = max(down_limit, min(up_limit, stable_desired))
        panic_desired = max(down_limit, min(up_limit, panic_desired))
        if panic_desired / ready >= self.panic_threshold_percentage / 100.0:
            self._panic_until = now + self.stable_window_seconds
        elif self._panic_until is not None and now >= self._panic_until:
            self._panic_until = None
            self._panic_high_water = 0
        if self._panic_until is not None:
            desired = max(panic_desired, self._panic_high_water, current)  # never down in panic
            self._panic_high_water = desired
        else:
            desired = stable_desired
        if desired == 0:
            # Scale to zero only after the grace period with no traffic in the stable window.
            if self._zero_since is None:
                self._zero_since = now
            if now - self._zero_since < self.scale_to_zero_grace_seconds:
                desired = max(1, self.min_replicas)
        else:
            self._zero_since = None
        return max(self.min_replicas, min(self.max_replicas, desired))

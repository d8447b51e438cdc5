"""A timeline driver for the decision core: time is stepped explicitly, Knative style.

`Timeline` plays a tiny fleet: it applies each decision at once, and a replica becomes Ready
`cold_start_seconds` after it was requested. Load is given in requests per second with a fixed
token mix, so a test reads like "five minutes pass at half load".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmscale.scaling import Decision, DecisionInputs, ScalerState, ScalingPolicy, decide

PROMPT_TOKENS = 1000.0
GENERATION_TOKENS = 200.0
# With the default policy (40k prompt tok/s, 7.5k generated tok/s) one request costs
# 1000/40000 + 200/7500 = 0.0517 replica-seconds: saturation 19.4 req/s, 14.5 req/s at 75 %.
RPS_PER_REPLICA = 0.75 / (PROMPT_TOKENS / 40_000 + GENERATION_TOKENS / 7_500)


@dataclass
class Timeline:
    policy: ScalingPolicy
    replicas: int = 1
    now: float = 0.0
    cold_start_seconds: float = 0.0
    state: ScalerState = field(default_factory=ScalerState)
    decisions: list[Decision] = field(default_factory=list)
    history: list[tuple[float, int]] = field(default_factory=list)
    _starting: list[float] = field(default_factory=list)

    @property
    def ready(self) -> int:
        return self.replicas - sum(1 for ready_at in self._starting if ready_at > self.now)

    @property
    def last(self) -> Decision:
        return self.decisions[-1]

    def step(self, rps: float = 0.0, **overrides: object) -> Decision:
        values: dict[str, object] = {
            "current_replicas": self.replicas,
            "ready_replicas": self.ready,
            "request_rate_rps": rps if self.ready > 0 else 0.0,
            "prompt_tokens_per_second": rps * PROMPT_TOKENS if self.ready > 0 else 0.0,
            "generation_tokens_per_second": rps * GENERATION_TOKENS if self.ready > 0 else 0.0,
            "num_requests_running": min(rps, 50.0) if self.ready > 0 else 0.0,
            "ttft_p95_seconds": 0.2 if rps > 0 and self.ready > 0 else None,
            "gateway_arrivals_rps": rps,
            "gateway_queue_depth": 1 if rps > 0 and self.ready == 0 else 0,
            "activation_requested": rps > 0 and self.ready == 0,
        }
        values.update(overrides)
        inputs = DecisionInputs(**values)  # type: ignore[arg-type]
        decision = decide(inputs, self.policy, self.state, self.now)
        self.state = decision.next_state
        self.decisions.append(decision)
        self._apply(decision.desired_replicas)
        self.history.append((self.now, self.replicas))
        self.now += self.policy.decision_interval_seconds
        return decision

    def run(self, seconds: float, rps: float = 0.0, **overrides: object) -> Decision:
        steps = max(1, round(seconds / self.policy.decision_interval_seconds))
        for _ in range(steps):
            self.step(rps, **overrides)
        return self.last

    def _apply(self, desired: int) -> None:
        self._starting = [ready_at for ready_at in self._starting if ready_at > self.now]
        if desired > self.replicas:
            self._starting += [self.now + self.cold_start_seconds] * (desired - self.replicas)
        elif desired < self.replicas:
            # Scale-down removes starting replicas first, as a ReplicaSet does.
            surplus = self.replicas - desired
            self._starting = sorted(self._starting)[: max(0, len(self._starting) - surplus)]
        self.replicas = desired

    def changes(self) -> int:
        """Number of times the replica count changed direction or value."""
        return sum(1 for (_, a), (_, b) in zip(self.history, self.history[1:], strict=False) if a != b)

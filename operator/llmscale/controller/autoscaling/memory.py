"""What the scaling loop remembers per deployment besides the decision core's `ScalerState`.

All of it travels in `status.scalerState` next to the core's own keys (under `"loop"`; the
core's `ScalerState.from_dict` ignores unknown keys), so an operator restart resumes cold-start
samples, cost totals, SLO counters and the decision history instead of starting over.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmscale.scaling import ScalerState
from llmscale.scaling.coldstart import ColdStartTracker
from llmscale.scaling.cost import CostTracker
from llmscale.scaling.types import STATE_VERSION

MAX_LAST_DECISIONS = 10
LOOP_KEY = "loop"


@dataclass
class SloTracker:
    """Share of requests served while the measured p95 met the SLO (request-weighted ticks).

    Prometheus gives a p95 per rate window, not per request; weighting each tick by the
    requests it carried makes a busy minute that missed the SLO count more than a quiet one.
    """

    requests_total: float = 0.0
    requests_within_slo: float = 0.0

    def observe(
        self,
        requests: float,
        ttft_p95_seconds: float | None,
        itl_p95_seconds: float | None,
        slo_ttft_seconds: float,
        slo_itl_seconds: float | None,
    ) -> None:
        if requests <= 0 or ttft_p95_seconds is None:
            return
        met = ttft_p95_seconds <= slo_ttft_seconds and (
            slo_itl_seconds is None or itl_p95_seconds is None or itl_p95_seconds <= slo_itl_seconds
        )
        self.requests_total += requests
        if met:
            self.requests_within_slo += requests

    @property
    def attainment(self) -> float | None:
        if self.requests_total <= 0:
            return None
        return self.requests_within_slo / self.requests_total

    def to_dict(self) -> dict[str, float]:
        return {"total": self.requests_total, "withinSlo": self.requests_within_slo}

    @classmethod
    def from_dict(cls, data: object) -> SloTracker:
        if not isinstance(data, dict):
            return cls()
        total, within = data.get("total"), data.get("withinSlo")
        if not isinstance(total, int | float) or not isinstance(within, int | float):
            return cls()
        return cls(requests_total=float(total), requests_within_slo=float(min(within, total)))


def _state_dict(state: ScalerState) -> dict[str, Any]:
    """`ScalerState.to_dict()` without its deep copy (the profile of a 1000-deployment tick).

    Safe because `decide` never mutates the state it is given (it returns a clone as
    next_state), so the lists referenced here are not changed after the loop stores them.
    Equality with `to_dict()` is checked in the unit tests.
    """
    data: dict[str, Any] = {}
    for key, name in (
        ("forecast", "forecast"),
        ("capacity", "capacity"),
        ("workload", "workload"),
        ("scaler", "scaler"),
        ("activation", "activation"),
        ("strategy", "strategy"),
    ):
        part = getattr(state, name)
        data[key] = {f: getattr(part, f) for f in part.__dataclass_fields__}
    data["version"] = STATE_VERSION
    data["lastDesiredReplicas"] = state.last_desired_replicas
    data["lastDecisionTime"] = state.last_decision_time
    return data


@dataclass
class LoopMemory:
    state: ScalerState = field(default_factory=ScalerState)
    cold_start: ColdStartTracker = field(default_factory=ColdStartTracker)
    cost: CostTracker = field(default_factory=CostTracker)
    slo: SloTracker = field(default_factory=SloTracker)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """status.lastDecisions records, newest last."""
    scale_ups: int = 0
    scale_downs: int = 0
    last_reason: str | None = None
    last_desired: int | None = None
    last_strategy: str | None = None
    """The concrete strategy of the last decision (as in status.strategy)."""
    applied: tuple[float, int] | None = None
    """(when, replicas) of this process's last scale: a snapshot read before then still shows the
    old count, and deciding on it would scale (and announce) the same step twice."""
    needs_seed: bool = True
    """No saved forecast state: seed the time-of-day profile from Prometheus history once."""

    def record(self, record: dict[str, Any]) -> None:
        self.decisions = ([*self.decisions, record])[-MAX_LAST_DECISIONS:]

    def to_scaler_state(self) -> dict[str, Any]:
        data = _state_dict(self.state)
        data[LOOP_KEY] = {
            "coldStart": self.cold_start.to_dict(),
            "cost": self.cost.to_dict(),
            "slo": self.slo.to_dict(),
            "scaleUps": self.scale_ups,
            "scaleDowns": self.scale_downs,
        }
        return data

    @classmethod
    def from_status(cls, status: object) -> LoopMemory:
        """Resume from an LLMDeployment's status (any malformed part starts fresh)."""
        status = status if isinstance(status, dict) else {}
        raw = status.get("scalerState")
        raw = raw if isinstance(raw, dict) else {}
        loop = raw.get(LOOP_KEY)
        loop = loop if isinstance(loop, dict) else {}
        decisions = [d for d in status.get("lastDecisions") or () if isinstance(d, dict)]
        memory = cls(
            state=ScalerState.from_dict(raw),
            cold_start=ColdStartTracker.from_dict(loop.get("coldStart")),
            cost=CostTracker.from_dict(loop.get("cost")),
            slo=SloTracker.from_dict(loop.get("slo")),
            decisions=decisions[-MAX_LAST_DECISIONS:],
        )
        memory.needs_seed = memory.state.forecast.first_time is None
        for name in ("scaleUps", "scaleDowns"):
            value = loop.get(name)
            if isinstance(value, int) and value >= 0:
                setattr(memory, "scale_ups" if name == "scaleUps" else "scale_downs", value)
        if memory.decisions:
            memory.last_reason = memory.decisions[-1].get("reason")
            last = memory.decisions[-1].get("desiredReplicas")
            memory.last_desired = last if isinstance(last, int) else None
        return memory

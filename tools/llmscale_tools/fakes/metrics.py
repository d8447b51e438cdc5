"""A `MetricsSource` for tests: set what Prometheus "would say", then read it back."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from llmscale.errors import MetricsUnavailableError
from llmscale.metrics.types import SIGNAL_NAMES, DemandHistory, DeploymentKey, DeploymentMetrics


class FakeMetricsSource:
    """In-memory metrics with setters; records every call with its explicit time.

    `set(ns, name, request_rate_rps=2.0, ...)` marks the given signals present (a `None` value
    means "no traffic" for a quantile, i.e. present but empty); the signals never set stay in the
    deployment's `missing` set unless `set_complete` is used.
    """

    def __init__(self) -> None:
        self._current: dict[DeploymentKey, DeploymentMetrics] = {}
        self._history: dict[DeploymentKey, DemandHistory] = {}
        self._error: MetricsUnavailableError | None = None
        self.current_calls: list[float] = []
        self.history_calls: list[tuple[float, float, float]] = []

    def set(self, namespace: str, name: str, **signals: float | None) -> DeploymentMetrics:
        unknown = set(signals) - set(SIGNAL_NAMES)
        if unknown:
            raise ValueError(f"unknown signal names: {sorted(unknown)}")
        key = (namespace, name)
        previous = self._current.get(key, DeploymentMetrics.empty(namespace, name))
        updated = replace(previous, missing=previous.missing - set(signals), **signals)  # type: ignore[arg-type]
        self._current[key] = updated
        return updated

    def set_complete(self, namespace: str, name: str, **signals: float | None) -> DeploymentMetrics:
        """Every signal present: those not given are zero (quantiles: no traffic)."""
        defaults: dict[str, Any] = {s: (None if s.endswith("_p95_seconds") else 0.0) for s in SIGNAL_NAMES}
        defaults.update(signals)
        self._current.pop((namespace, name), None)
        return self.set(namespace, name, **defaults)

    def set_idle(self, namespace: str, name: str) -> DeploymentMetrics:
        return self.set_complete(namespace, name)

    def remove(self, namespace: str, name: str) -> None:
        self._current.pop((namespace, name), None)

    def set_history(self, history: DemandHistory) -> None:
        self._history[history.key] = history

    def fail(self, message: str = "prometheus is down (fake)") -> None:
        """Every following fetch raises MetricsUnavailableError until `recover()`."""
        self._error = MetricsUnavailableError(message)

    def recover(self) -> None:
        self._error = None

    async def fetch_current(self, now_seconds: float) -> dict[DeploymentKey, DeploymentMetrics]:
        self.current_calls.append(now_seconds)
        if self._error is not None:
            raise self._error
        return dict(self._current)

    async def fetch_history(
        self, start_seconds: float, end_seconds: float, step_seconds: float
    ) -> dict[DeploymentKey, DemandHistory]:
        self.history_calls.append((start_seconds, end_seconds, step_seconds))
        if self._error is not None:
            raise self._error
        return dict(self._history)

"""GPU cost accounting of one deployment, integrated tick by tick.

GPU-hours count provisioned replicas (starting ones included: a GPU being loaded is paid for)
times GPUs per replica. The always-on baseline is `maxReplicas` for the same wall time: what
a platform team would provision without autoscaling to be safe at the peak. The saving is the
difference (never negative: a deployment above its max is a bug elsewhere, not a saving).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_TICK_GAP_SECONDS = 300.0
"""A longer gap between ticks (operator down) is not integrated: nobody saw what ran."""


@dataclass
class CostTracker:
    gpu_hours: float = 0.0
    always_on_gpu_hours: float = 0.0
    last_time: float | None = None
    dollars_per_hour: float = 0.0

    def observe(
        self,
        now: float,
        replicas: int,
        gpus_per_replica: int,
        max_replicas: int,
        gpu_price_per_hour_usd: float,
    ) -> None:
        """Account for the interval since the previous call at the replicas seen now."""
        if self.last_time is not None:
            elapsed = now - self.last_time
            if 0.0 < elapsed <= MAX_TICK_GAP_SECONDS:
                hours = elapsed / 3600.0
                self.gpu_hours += max(0, replicas) * gpus_per_replica * hours
                self.always_on_gpu_hours += max(max_replicas, replicas) * gpus_per_replica * hours
        self.last_time = now
        self.dollars_per_hour = max(0, replicas) * gpus_per_replica * gpu_price_per_hour_usd

    @property
    def gpu_hours_saved(self) -> float:
        return max(0.0, self.always_on_gpu_hours - self.gpu_hours)

    def to_status(self) -> dict[str, float]:
        return {
            "gpuHours": round(self.gpu_hours, 6),
            "dollarsPerHour": round(self.dollars_per_hour, 4),
            "gpuHoursSavedVsAlwaysOn": round(self.gpu_hours_saved, 6),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpuHours": self.gpu_hours,
            "alwaysOnGpuHours": self.always_on_gpu_hours,
            "lastTime": self.last_time,
        }

    @classmethod
    def from_dict(cls, data: object) -> CostTracker:
        if not isinstance(data, dict):
            return cls()

        def number(key: str) -> float:
            value = data.get(key)
            return float(value) if isinstance(value, int | float) and value >= 0 else 0.0

        last = data.get("lastTime")
        return cls(
            gpu_hours=number("gpuHours"),
            always_on_gpu_hours=number("alwaysOnGpuHours"),
            last_time=float(last) if isinstance(last, int | float) else None,
        )

"""Measured cold start: pod creation -> Ready, from the pods' own timestamps.

A cold start is read from a pod's `metadata.creationTimestamp` and the `lastTransitionTime` of
its `Ready=True` condition. Only the first Ready of a pod counts: a pod that flaps NotReady ->
Ready later would report the flap, not its start. That is only knowable for pods whose Ready
transition is their first one, so a pod counts when it is Ready, has not restarted (every
container's `restartCount` is 0) and its Ready time is after its creation. Each pod is counted
once (by uid). The p50/p95 of the recent samples are fed back into the decisions as the
forecast horizon (`DecisionInputs.cold_start_p95_seconds`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmscale.percentile import percentile
from llmscale.timestamps import parse_rfc3339

MAX_SAMPLES = 50
"""Recent cold starts kept per deployment (older ones age out: images and caches change)."""
MAX_SEEN_UIDS = 200


def pod_cold_start_seconds(pod: Mapping[str, Any]) -> float | None:
    """Seconds from creation to first Ready, or None when this pod cannot tell it."""
    metadata = pod.get("metadata") or {}
    status = pod.get("status") or {}
    created = parse_rfc3339(metadata.get("creationTimestamp"))
    if created is None or metadata.get("deletionTimestamp"):
        return None
    for container in status.get("containerStatuses") or ():
        if int(container.get("restartCount") or 0) > 0:
            return None
    for condition in status.get("conditions") or ():
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            ready = parse_rfc3339(condition.get("lastTransitionTime"))
            if ready is None or ready < created:
                return None
            return ready - created
    return None


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


@dataclass
class ColdStartTracker:
    """Cold-start samples of one deployment; JSON round-trip via to_dict/from_dict."""

    samples_seconds: list[float] = field(default_factory=list)
    seen_uids: list[str] = field(default_factory=list)
    total_samples: int = 0

    def observe(self, pods: Iterable[Mapping[str, Any]]) -> list[float]:
        """Record the cold starts of pods not seen before; returns the new samples."""
        added: list[float] = []
        seen = set(self.seen_uids)
        for pod in pods:
            uid = (pod.get("metadata") or {}).get("uid")
            if not isinstance(uid, str) or uid in seen:
                continue
            seconds = pod_cold_start_seconds(pod)
            if seconds is None:
                continue
            seen.add(uid)
            self.seen_uids.append(uid)
            added.append(seconds)
        if added:
            self.samples_seconds = (self.samples_seconds + added)[-MAX_SAMPLES:]
            self.seen_uids = self.seen_uids[-MAX_SEEN_UIDS:]
            self.total_samples += len(added)
        return added

    @property
    def p50_seconds(self) -> float | None:
        return percentile(self.samples_seconds, 50)

    @property
    def p95_seconds(self) -> float | None:
        return percentile(self.samples_seconds, 95)

    def to_status(self) -> dict[str, Any]:
        p50, p95 = self.p50_seconds, self.p95_seconds
        return {
            "p50Seconds": None if p50 is None else round(p50, 2),
            "p95Seconds": None if p95 is None else round(p95, 2),
            "samples": self.total_samples,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": [round(s, 3) for s in self.samples_seconds],
            "seen": list(self.seen_uids),
            "total": self.total_samples,
        }

    @classmethod
    def from_dict(cls, data: object) -> ColdStartTracker:
        if not isinstance(data, dict):
            return cls()
        samples = [float(s) for s in data.get("samples") or () if isinstance(s, int | float) and s >= 0]
        seen = [u for u in data.get("seen") or () if isinstance(u, str)]
        total = data.get("total")
        return cls(
            samples_seconds=samples[-MAX_SAMPLES:],
            seen_uids=seen[-MAX_SEEN_UIDS:],
            total_samples=total if isinstance(total, int) and total >= len(samples) else len(samples),
        )

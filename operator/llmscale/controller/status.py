"""Writing LLMDeployment status: one model, conditions merged by type, optimistic concurrency.

Both the reconcile and the autoscaling loop write status through `write_status`, which reads
the object fresh, merges conditions by type (a writer only replaces the types it passes, and a
condition keeps its lastTransitionTime while its status does not change) and patches with the
resourceVersion it read, retrying on conflict. Handlers never return values (kopf would store
them in status).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

from llmscale.api import Condition, LLMDeploymentStatus
from llmscale.api.status import CONDITION_TYPES
from llmscale.controller.kube import LLMDEPLOYMENT, ClusterApi, ConflictError
from llmscale.timestamps import rfc3339

STATUS_WRITE_ATTEMPTS: Final = 4


def merge_conditions(
    current: Iterable[Condition], updates: Iterable[Condition], now: datetime
) -> list[Condition]:
    """Replace conditions by type; keep lastTransitionTime when the status is unchanged."""
    merged = {c.type: c for c in current}
    for new in updates:
        old = merged.get(new.type)
        if old is not None and old.status == new.status and old.last_transition_time:
            transition = old.last_transition_time
        else:
            transition = new.last_transition_time or rfc3339(now)
        merged[new.type] = new.model_copy(update={"last_transition_time": transition})
    return sorted(merged.values(), key=lambda c: CONDITION_TYPES.index(c.type))


def condition(type_: str, status: str, reason: str, message: str, generation: int | None = None) -> Condition:
    return Condition.model_validate(
        {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
        }
    )


def write_status(
    api: ClusterApi,
    namespace: str,
    name: str,
    fields: dict[str, Any],
    conditions: Iterable[Condition] = (),
    *,
    now: datetime | None = None,
) -> LLMDeploymentStatus | None:
    """Merge-patch `fields` (camelCase status keys; None deletes a key) and `conditions`.

    Returns the status now stored, or None when the LLMDeployment is gone. The patch is
    validated against the status model first, so a writer cannot store a malformed status.
    """
    moment = now or datetime.now(UTC)
    updates = list(conditions)
    for _ in range(STATUS_WRITE_ATTEMPTS):
        body = api.get(*LLMDEPLOYMENT, namespace, name)
        if body is None:
            return None
        current = LLMDeploymentStatus.model_validate(body.get("status") or {})
        patch = dict(fields)
        if updates:
            merged = merge_conditions(current.conditions or (), updates, moment)
            patch["conditions"] = [c.to_wire() for c in merged]
        # Validate what the status will look like (merge semantics: None removes).
        before = current.to_wire()
        after = {**before, **{k: v for k, v in patch.items() if v is not None}}
        for key in [k for k, v in patch.items() if v is None]:
            after.pop(key, None)
        LLMDeploymentStatus.model_validate(after)
        if after == before:
            # Nothing changes: no write, so no watch event and no churn for other watchers.
            return current
        try:
            stored = api.patch_status(namespace, name, patch, body["metadata"].get("resourceVersion"))
        except ConflictError:
            continue
        return LLMDeploymentStatus.model_validate(stored.get("status") or {})
    raise ConflictError(
        f"status of {namespace}/{name}: still conflicting after {STATUS_WRITE_ATTEMPTS} attempts"
    )

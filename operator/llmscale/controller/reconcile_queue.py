"""One reconcile of an LLMDeployment at a time, whoever asks: the serialised path.

kopf serialises the handlers of one object, but an LLMDeployment is also reconciled on its
children's events (Deployment, Service), by timers, and by the scaling loop when it applies a
new replica count. All of them go through one `ReconcileQueue` (kept in kopf's memo), which
holds an asyncio lock per LLMDeployment, so two reconciles of one object never overlap and
the loop's `desiredReplicas` write and the reconcile that applies it are one step.

Requests for the latest state coalesce: while a reconcile of X runs, any number of further
requests for X wait as ONE rerun that reads X fresh when it starts (children's events come in
bursts). A handler's own reconcile (create/update/resume) is never coalesced away: it waits its
turn and reports its own outcome to kopf. Waiting is `async with lock`, never a poll.

The reconcile itself is synchronous (the kubernetes client); it runs in this queue's thread
pool, so the event loop (kopf's watches, the scaling daemons) keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from llmscale.controller.kube import LLMDEPLOYMENT, ClusterApi
from llmscale.controller.reconcile import EventSink, ReconcileResult, reconcile
from llmscale.controller.status import write_status

DEFAULT_WORKERS: Final = 16
Key = tuple[str, str]
T = TypeVar("T")


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    rerun_waiting: bool = False


class ReconcileQueue:
    def __init__(
        self,
        api: ClusterApi,
        events_for: Callable[[Mapping[str, Any]], EventSink],
        workers: int = DEFAULT_WORKERS,
    ) -> None:
        self.api = api
        self.events_for = events_for
        self._slots: dict[Key, _Slot] = {}
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _slot(self, key: Key) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        return slot

    def forget(self, namespace: str, name: str) -> None:
        """Drop the bookkeeping of a deleted LLMDeployment (when nobody holds or awaits it)."""
        slot = self._slots.get((namespace, name))
        if slot is not None and not slot.lock.locked() and not slot.rerun_waiting:
            del self._slots[(namespace, name)]

    def busy(self, namespace: str, name: str) -> bool:
        slot = self._slots.get((namespace, name))
        return slot is not None and slot.lock.locked()

    async def _in_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def reconcile_body(self, body: Mapping[str, Any], *, fresh: bool = False) -> ReconcileResult:
        """Reconcile this body (a handler's own event) after any reconcile of it that runs now."""
        meta = body["metadata"]
        async with self._slot((str(meta.get("namespace") or "default"), str(meta["name"]))).lock:
            plain = dict(body)
            return await self._in_thread(reconcile, plain, self.api, self.events_for(plain), fresh=fresh)

    async def reconcile_latest(self, namespace: str, name: str) -> ReconcileResult | None:
        """Reconcile the stored object; None when coalesced into a waiting rerun, or it is gone."""
        slot = self._slot((namespace, name))
        if slot.rerun_waiting:
            return None  # the rerun already waiting will read the object fresh
        slot.rerun_waiting = True
        async with slot.lock:
            slot.rerun_waiting = False
            return await self._reconcile_stored(namespace, name)

    async def scale_to(self, namespace: str, name: str, replicas: int) -> ReconcileResult | None:
        """The scaling loop's apply: record `status.desiredReplicas`, then reconcile, as one step.

        The reconcile applies that number (clamped to [minReplicas, maxReplicas]) with the same
        field manager as everything else, so the loop never patches the Deployment itself and
        cannot fight a reconcile. None when the LLMDeployment is gone. Raises what reconcile
        raises (SpecRejected, RetryLater, TransientError).
        """
        if replicas < 0:
            raise ValueError(f"replicas: {replicas} must be >= 0")
        async with self._slot((namespace, name)).lock:
            written = await self._in_thread(
                write_status, self.api, namespace, name, {"desiredReplicas": replicas}
            )
            if written is None:
                return None
            return await self._reconcile_stored(namespace, name)

    async def _reconcile_stored(self, namespace: str, name: str) -> ReconcileResult | None:
        body = await self._in_thread(self.api.get, *LLMDEPLOYMENT, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        return await self._in_thread(reconcile, body, self.api, self.events_for(body), fresh=True)

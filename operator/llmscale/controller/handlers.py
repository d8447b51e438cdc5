"""kopf handlers: thin shells that call reconcile and map its outcome onto kopf's contract.

- create / update / resume of an LLMDeployment -> reconcile; and the first sight of every
  pre-existing LLMDeployment after a start (kopf's resume does not fire with watch-list streams).
- any change (or deletion) of a Deployment or Service we manage -> reconcile its parent, which
  re-applies our fields (manual edits reverted, deleted children recreated) and refreshes the
  status (readyReplicas, Ready) as pods come up.
- a resync timer re-applies everything every RESYNC_SECONDS as a safety net for missed events;
  while Ready=False only because pods are starting or pending, a faster timer re-checks.
- delete: nothing to do (children carry owner references; the garbage collector removes them).
  kopf's finalizer is on the object because timers and the scaling daemon need one: kopf
  stops them before it lets the object go.

SpecRejected -> kopf.PermanentError (retrying cannot help until the spec changes);
RetryLater / TransientError -> kopf.TemporaryError(delay). Status and Events are written
before raising, so the traceback-free condition message is the signal. Handlers return None.

Every reconcile goes through the one `ReconcileQueue` (controller/reconcile_queue.py): one at a
time per LLMDeployment, children's bursts coalesced, the scaling loop's apply included. What the
handlers share lives in kopf's `memo` (`OperatorContext`), not in module globals, so a test or a
second operator in one process starts from a clean slate.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import kopf

from llmscale.api import defaults
from llmscale.controller.events import EventPoster
from llmscale.controller.kube import KubeApi
from llmscale.controller.reconcile import RetryLater, SpecRejected
from llmscale.controller.reconcile_queue import ReconcileQueue
from llmscale.errors import TransientError
from llmscale.resources.labels import DEPLOYMENT_LABEL, MANAGED_BY_LABEL, MANAGER

RESYNC_SECONDS: Final = 300.0
TRANSIENT_RETRY_SECONDS: Final = 10.0
WAITING_RECHECK_SECONDS: Final = 10.0
WAITING_REASONS: Final = frozenset({"ReplicasStarting", "Unschedulable", "RolloutStuck"})
MANAGED_CHILDREN: Final[dict[str, Any]] = {
    MANAGED_BY_LABEL: MANAGER,
    DEPLOYMENT_LABEL: kopf.PRESENT,
}


@dataclass
class OperatorContext:
    """What every handler of one operator shares (kept in kopf's memo as `memo.context`)."""

    api: KubeApi
    reconciles: ReconcileQueue
    seen_uids: set[str] = field(default_factory=set)
    """LLMDeployments this process has seen since it started (see `first_sight`)."""


def events_for(api: KubeApi) -> Any:
    from kubernetes import client

    core = client.CoreV1Api(api.api_client)

    def poster(body: Mapping[str, Any]) -> EventPoster:
        meta = body.get("metadata") or {}
        return EventPoster(
            core, str(meta.get("namespace") or "default"), str(meta.get("name")), meta.get("uid")
        )

    return poster


def operator_context(memo: Any) -> OperatorContext:
    """The memo's context, created on first use (the startup handler does it first)."""
    context: OperatorContext | None = getattr(memo, "context", None)
    if context is None:
        api = KubeApi.from_environment()
        context = OperatorContext(api=api, reconciles=ReconcileQueue(api, events_for(api)))
        memo.context = context
    return context


async def _outcome(action: Awaitable[Any], logger: logging.Logger | kopf.Logger) -> None:
    """Run a reconcile and map its outcome onto kopf's contract."""
    try:
        result = await action
    except SpecRejected as exc:
        raise kopf.PermanentError(str(exc)) from exc
    except RetryLater as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc
    except TransientError as exc:
        raise kopf.TemporaryError(str(exc), delay=TRANSIENT_RETRY_SECONDS) from exc
    if result is not None:
        logger.debug(
            "reconciled: %d replicas desired, Ready=%s", result.desired_replicas, result.ready.status
        )


async def _reconcile_latest_quietly(memo: Any, namespace: str, name: str, logger: kopf.Logger) -> None:
    """Outside the object's own handlers, failures are logged (status already carries them)."""
    try:
        await _outcome(operator_context(memo).reconciles.reconcile_latest(namespace, name), logger)
    except (kopf.PermanentError, kopf.TemporaryError) as exc:
        logger.debug("reconcile of %s/%s: %s", namespace, name, exc)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Keep kopf's bookkeeping in our own annotation namespace, never in status (the status
    # schema is ours and would prune it).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=defaults.API_GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=defaults.API_GROUP, key="last-handled-configuration"
    )
    # Only explicit Events (and kopf's own warnings/errors) reach `kubectl describe`.
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 16
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    operator_context(memo)  # fail at startup, not at the first event, when there is no kubeconfig


@kopf.on.resume(defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL)
@kopf.on.create(defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL)
@kopf.on.update(defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL)
async def reconcile_llmdeployment(body: kopf.Body, logger: kopf.Logger, memo: kopf.Memo, **_: Any) -> None:
    # waits its turn behind any reconcile of this object (a child event's, the loop's), then
    # reconciles this spec and reports its own outcome
    await _outcome(operator_context(memo).reconciles.reconcile_body(body), logger)


@kopf.timer(
    defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL, interval=RESYNC_SECONDS, initial_delay=60
)
async def resync(body: kopf.Body, logger: kopf.Logger, memo: kopf.Memo, **_: Any) -> None:
    await _reconcile_latest_quietly(memo, body["metadata"]["namespace"], body["metadata"]["name"], logger)


def _waiting_for_pods(status: Mapping[str, Any], **_: Any) -> bool:
    """Ready=False only because pods are starting or pending: their progress is in pod
    conditions that no Deployment event reports, so it is polled."""
    for cond in status.get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") != "True" and cond.get("reason") in WAITING_REASONS
    return False


@kopf.timer(
    defaults.API_GROUP,
    defaults.API_VERSION,
    defaults.PLURAL,
    interval=WAITING_RECHECK_SECONDS,
    initial_delay=WAITING_RECHECK_SECONDS,
    when=_waiting_for_pods,
)
async def recheck_while_waiting(body: kopf.Body, logger: kopf.Logger, memo: kopf.Memo, **_: Any) -> None:
    await _reconcile_latest_quietly(memo, body["metadata"]["namespace"], body["metadata"]["name"], logger)


@kopf.on.event(defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL)
async def first_sight(
    body: kopf.Body, event: kopf.RawEvent, logger: kopf.Logger, memo: kopf.Memo, **_: Any
) -> None:
    """Reconcile every pre-existing LLMDeployment once when this process first sees it.

    kopf's on.resume only fires for objects delivered by a classic initial listing; with
    watch-list streams the initial objects arrive as ADDED events and resume never fires. This
    makes a restart converge anyway (children deleted or drifted while the operator was down).
    New objects (no status.observedGeneration yet) are left to on.create.
    """
    meta = body["metadata"]
    uid = str(meta.get("uid"))
    context = operator_context(memo)
    if event.get("type") == "DELETED":
        context.seen_uids.discard(uid)
        context.reconciles.forget(meta.get("namespace", "default"), meta["name"])
        return
    if uid in context.seen_uids:
        return
    context.seen_uids.add(uid)
    if (body.get("status") or {}).get("observedGeneration") is None or meta.get("deletionTimestamp"):
        return
    await _reconcile_latest_quietly(memo, meta.get("namespace", "default"), meta["name"], logger)


@kopf.on.delete(defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL, optional=True)
def deleted(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    logger.info("deleted; the garbage collector removes its Deployment, Service and PDB")


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED_CHILDREN)
# Multi-node replicas; kopf serves this only once the LeaderWorkerSet CRD exists.
@kopf.on.event("leaderworkerset.x-k8s.io", "v1", "leaderworkersets", labels=MANAGED_CHILDREN)
@kopf.on.event("", "v1", "services", labels=MANAGED_CHILDREN)
async def child_changed(
    body: kopf.Body, event: kopf.RawEvent, logger: kopf.Logger, memo: kopf.Memo, **_: Any
) -> None:
    meta = body["metadata"]
    namespace = meta.get("namespace", "default")
    parent = meta.get("labels", {}).get(DEPLOYMENT_LABEL)
    if not parent:
        return
    own_echo = event.get("type") != "DELETED" and operator_context(memo).api.is_own_apply(
        str(body.get("kind")), namespace, meta["name"], meta.get("resourceVersion")
    )
    if not own_echo:
        await _reconcile_latest_quietly(memo, namespace, parent, logger)

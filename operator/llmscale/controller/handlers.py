"""kopf handlers: thin shells that call reconcile and map its outcome onto kopf's contract.

- create / update / resume of an LLMDeployment -> reconcile; and the first sight of every
  pre-existing LLMDeployment after a start (kopf's resume does not fire with watch-list streams).
- any change (or deletion) of a Deployment or Service we manage -> reconcile its parent, which
  re-applies our fields (manual edits reverted, deleted children recreated) and refreshes the
  status (readyReplicas, Ready) as pods come up.
- a resync timer re-applies everything every RESYNC_SECONDS as a safety net for missed events;
  while Ready=False only because pods are starting or pending, a faster timer re-checks.
- delete: nothing to do (children carry owner references; the garbage collector removes them),
  so no finalizer blocks deletion.

SpecRejected -> kopf.PermanentError (retrying cannot help until the spec changes);
RetryLater / TransientError -> kopf.TemporaryError(delay). Status and Events are written
before raising, so the traceback-free condition message is the signal. Handlers return None.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import kopf

from llmscale.api import defaults
from llmscale.controller.kube import LLMDEPLOYMENT, KubeApi
from llmscale.controller.reconcile import RetryLater, SpecRejected, reconcile
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

_api: KubeApi | None = None
_api_lock = threading.Lock()


def cluster_api() -> KubeApi:
    global _api
    with _api_lock:
        if _api is None:
            _api = KubeApi.from_environment()
        return _api


class KopfEvents:
    """EventSink posting Kubernetes Events on the LLMDeployment through kopf."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self._body = body

    def emit(self, type_: str, reason: str, message: str) -> None:
        kopf.event(self._body, type=type_, reason=reason, message=message[:1024])  # type: ignore[arg-type]


class _Coalescer:
    """One reconcile per LLMDeployment at a time; events arriving meanwhile cause one rerun."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, bool] = {}  # key -> rerun requested

    def enter(self, key: str) -> bool:
        with self._lock:
            if key in self._running:
                self._running[key] = True
                return False
            self._running[key] = False
            return True

    def leave(self, key: str) -> bool:
        """Release `key`, unless a rerun was requested meanwhile: then keep it and return True."""
        with self._lock:
            if self._running.get(key):
                self._running[key] = False
                return True
            self._running.pop(key, None)
            return False

    def release(self, key: str) -> None:
        with self._lock:
            self._running.pop(key, None)


_coalescer = _Coalescer()


def _reconcile_latest(namespace: str, name: str, logger: logging.Logger | kopf.Logger) -> None:
    """Reconcile the stored object (not an event's snapshot), coalescing concurrent requests."""
    key = f"{namespace}/{name}"
    if _coalescer.enter(key):
        _rerun_while_requested(key, namespace, name, logger)


def _rerun_while_requested(key: str, namespace: str, name: str, logger: logging.Logger | kopf.Logger) -> None:
    """The caller owns `key`; reconcile until no further request arrived, then release it."""
    try:
        while True:
            body = cluster_api().get(*LLMDEPLOYMENT, namespace, name)
            if body is not None and not body["metadata"].get("deletionTimestamp"):
                _run(body, logger, fresh=True)
            if not _coalescer.leave(key):
                return
    except BaseException:
        _coalescer.release(key)
        raise


def _run(body: Mapping[str, Any], logger: logging.Logger | kopf.Logger, *, fresh: bool = False) -> None:
    plain = dict(body)
    try:
        result = reconcile(plain, cluster_api(), KopfEvents(plain), fresh=fresh)
    except SpecRejected as exc:
        raise kopf.PermanentError(str(exc)) from exc
    except RetryLater as exc:
        raise kopf.TemporaryError(str(exc), delay=exc.delay) from exc
    except TransientError as exc:
        raise kopf.TemporaryError(str(exc), delay=TRANSIENT_RETRY_SECONDS) from exc
    logger.debug("reconciled: %d replicas desired, Ready=%s", result.desired_replicas, result.ready.status)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
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
    cluster_api()  # fail at startup, not at the first event, when there is no kubeconfig


@kopf.on.resume(defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL)
@kopf.on.create(defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL)
@kopf.on.update(defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL)
def reconcile_llmdeployment(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    namespace = body["metadata"].get("namespace", "default")
    name = body["metadata"]["name"]
    key = f"{namespace}/{name}"
    while not _coalescer.enter(key):
        # A child event's reconcile is running for this object; it will see this spec too,
        # but the handler must report this spec's outcome, so run after it.
        threading.Event().wait(0.05)
    try:
        _run(body, logger)
    finally:
        if _coalescer.leave(key):
            _quietly(lambda: _rerun_while_requested(key, namespace, name, logger), key, logger)


def _quietly(action: Callable[[], None], key: str, logger: logging.Logger | kopf.Logger) -> None:
    """Outside the object's own handlers, failures are logged (status already carries them)."""
    try:
        action()
    except (kopf.PermanentError, kopf.TemporaryError) as exc:
        logger.debug("reconcile of %s: %s", key, exc)


def _reconcile_latest_quietly(namespace: str, name: str, logger: logging.Logger | kopf.Logger) -> None:
    _quietly(lambda: _reconcile_latest(namespace, name, logger), f"{namespace}/{name}", logger)


@kopf.timer(
    defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL, interval=RESYNC_SECONDS, initial_delay=60
)
def resync(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    _reconcile_latest_quietly(body["metadata"]["namespace"], body["metadata"]["name"], logger)


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
def recheck_while_waiting(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    _reconcile_latest_quietly(body["metadata"]["namespace"], body["metadata"]["name"], logger)


_seen_uids: set[str] = set()
_seen_lock = threading.Lock()


@kopf.on.event(defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL)
def first_sight(body: kopf.Body, event: kopf.RawEvent, logger: kopf.Logger, **_: Any) -> None:
    """Reconcile every pre-existing LLMDeployment once when this process first sees it.

    kopf's on.resume only fires for objects delivered by a classic initial listing; with
    watch-list streams the initial objects arrive as ADDED events and resume never fires. This
    makes a restart converge anyway (children deleted or drifted while the operator was down).
    New objects (no status.observedGeneration yet) are left to on.create.
    """
    meta = body["metadata"]
    uid = str(meta.get("uid"))
    with _seen_lock:
        if event.get("type") == "DELETED":
            _seen_uids.discard(uid)
            return
        if uid in _seen_uids:
            return
        _seen_uids.add(uid)
    if (body.get("status") or {}).get("observedGeneration") is None or meta.get("deletionTimestamp"):
        return
    _reconcile_latest_quietly(meta.get("namespace", "default"), meta["name"], logger)


@kopf.on.delete(defaults.API_GROUP, defaults.API_VERSION, defaults.PLURAL, optional=True)
def deleted(body: kopf.Body, logger: kopf.Logger, **_: Any) -> None:
    logger.info("deleted; the garbage collector removes its Deployment, Service and PDB")


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED_CHILDREN)
# Multi-node replicas; kopf serves this only once the LeaderWorkerSet CRD exists.
@kopf.on.event("leaderworkerset.x-k8s.io", "v1", "leaderworkersets", labels=MANAGED_CHILDREN)
@kopf.on.event("", "v1", "services", labels=MANAGED_CHILDREN)
def child_changed(body: kopf.Body, event: kopf.RawEvent, logger: kopf.Logger, **_: Any) -> None:
    meta = body["metadata"]
    namespace = meta.get("namespace", "default")
    parent = meta.get("labels", {}).get(DEPLOYMENT_LABEL)
    if not parent:
        return
    own_echo = event.get("type") != "DELETED" and cluster_api().is_own_apply(
        str(body.get("kind")), namespace, meta["name"], meta.get("resourceVersion")
    )
    if not own_echo:
        _reconcile_latest_quietly(namespace, parent, logger)

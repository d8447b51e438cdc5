"""One reconcile of an LLMDeployment: gather -> decide -> apply -> write status.

Gather: parse the spec, read the architecture ConfigMap if one is named. Decide: the planner's
fit verdict, the replica count (replicas.py), the manifests (llmscale.resources). Apply: server-
side apply (field manager `llmscale`, force) with owner references, so children are garbage-
collected with their parent and manual edits of fields we manage are overwritten on the next
reconcile. Status goes through controller.status.write_status; Events through an EventSink.

Failures come out as our own exceptions, which the kopf handlers map onto kopf's contract:
SpecRejected (retrying cannot help until the spec changes) and RetryLater / TransientError.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from pydantic import ValidationError

from llmscale.api import Condition, LLMDeployment, LLMDeploymentStatus
from llmscale.controller import readiness
from llmscale.controller.kube import ApiRejectedError, ClusterApi
from llmscale.controller.replicas import concrete_strategy, desired_replicas
from llmscale.controller.status import condition, write_status
from llmscale.controller.workload import (
    REASON_LWS_MISSING,
    LeaderWorkerSetMissing,
    apply_workload,
    pod_selector,
)
from llmscale.errors import TransientError, UserInputError
from llmscale.resources import (
    FitVerdict,
    build_pdb,
    build_pod_monitor,
    build_service,
    endpoint_url,
    evaluate_fit,
    owner_reference,
    plan_status,
    resolve_serving,
    selector_string,
    wants_pdb,
)
from llmscale.resources.networkpolicy import NetworkPolicySettings, build_network_policy
from llmscale.resources.service import PODMONITOR_GROUP, PODMONITOR_PLURAL, PODMONITOR_VERSION

RETRY_MISSING_CONFIGMAP_SECONDS: Final = 30.0
log = logging.getLogger(__name__)
# PDBs this process has deleted or found absent: saves a DELETE per reconcile of a one-replica
# deployment (only llmscale creates PDBs of that name; a restart forgets and deletes once more).
_PDB_KNOWN_ABSENT: set[str] = set()
# Who may reach the vLLM pods (the operator's --network-policy* flags; configure_network_policy).
_network_policy = NetworkPolicySettings()


def configure_network_policy(settings: NetworkPolicySettings) -> None:
    global _network_policy
    _network_policy = settings


# Not-yet-True states that are normal progress, not problems: their Events are Normal.
_PROGRESS_REASONS: Final = frozenset({"ReplicasStarting", "UnknownModel"})


class SpecRejected(UserInputError):
    """The spec cannot be served as written (does not fit, invalid for the model, rejected child)."""


class RetryLater(TransientError):
    """Something the spec refers to is not there yet (a ConfigMap); retry after `delay` seconds."""

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


class EventSink(Protocol):
    def emit(self, type_: str, reason: str, message: str) -> None: ...


@dataclass(frozen=True)
class ReconcileResult:
    desired_replicas: int
    ready: Condition
    model_fits: Condition
    status: LLMDeploymentStatus | None


def _now() -> datetime:
    return datetime.now(UTC)


def parse(body: dict[str, Any]) -> LLMDeployment:
    try:
        return LLMDeployment.from_body(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise SpecRejected(f"{where}: {first['msg']}") from exc


def _architecture(api: ClusterApi, resource: LLMDeployment) -> tuple[dict[str, Any] | None, str]:
    ref = resource.spec.model.architecture_config_map
    if ref is None:
        return None, "spec.model.architecture"
    source = f"ConfigMap {ref.name} key {ref.key}"
    config_map = api.get("v1", "ConfigMap", resource.metadata.namespace, ref.name)
    text = ((config_map or {}).get("data") or {}).get(ref.key)
    if text is None:
        raise RetryLater(
            f"spec.model.architectureConfigMap: {source} not found in namespace"
            f" {resource.metadata.namespace}",
            RETRY_MISSING_CONFIGMAP_SECONDS,
        )
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise SpecRejected(f"spec.model.architectureConfigMap: {source} is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise SpecRejected(f"spec.model.architectureConfigMap: {source} is not a JSON object")
    return parsed, source


def _fits_condition(verdict: FitVerdict, generation: int | None) -> Condition:
    return condition("ModelFits", verdict.status, verdict.reason, verdict.message, generation)


def _transition_events(
    events: EventSink, before: LLMDeploymentStatus | None, after: list[Condition], generation: int | None
) -> None:
    for new in after:
        old = before.condition(new.type) if before is not None else None
        if old is not None and (old.status, old.reason) == (new.status, new.reason):
            continue
        healthy = new.status == "True" or new.reason in _PROGRESS_REASONS
        events.emit("Normal" if healthy else "Warning", new.reason, f"{new.type}={new.status}: {new.message}")


def _hold(
    api: ClusterApi,
    resource: LLMDeployment,
    events: EventSink,
    fits: Condition,
    reason: str,
    message: str,
    fields: dict[str, Any] | None = None,
) -> None:
    """Record why nothing is (re)applied: Ready=False with the reason, plus an Event."""
    meta = resource.metadata
    ready = condition("Ready", "False", reason, message, meta.generation)
    status = {"observedGeneration": meta.generation, **(fields or {})}
    write_status(api, meta.namespace, meta.name, status, [fits, ready], now=_now())
    _transition_events(events, resource.status, [fits, ready], meta.generation)


def _apply_pod_monitor(api: ClusterApi, resource: LLMDeployment, owner: dict[str, Any]) -> None:
    """PodMonitor only where the Prometheus Operator's CRD is served; optional, so a refusal
    (e.g. RBAC without podmonitors) is logged and serving goes on."""
    if not api.has_api(f"{PODMONITOR_GROUP}/{PODMONITOR_VERSION}", PODMONITOR_PLURAL):
        return
    try:
        api.apply(build_pod_monitor(resource, owner))
    except ApiRejectedError as exc:
        log.warning(
            "PodMonitor of %s/%s not applied: %s", resource.metadata.namespace, resource.metadata.name, exc
        )


def reconcile(
    body: dict[str, Any], api: ClusterApi, events: EventSink, *, fresh: bool = False
) -> ReconcileResult:
    """Reconcile one LLMDeployment; `fresh=True` when `body` was just read from the API server."""
    resource = parse(body)
    meta = resource.metadata
    generation = meta.generation
    if meta.uid is None:
        raise SpecRejected("metadata.uid is missing: reconcile needs the object as stored")

    try:
        architecture, source = _architecture(api, resource)
    except RetryLater as exc:
        fits = condition("ModelFits", "Unknown", "ArchitectureConfigMapNotFound", str(exc), generation)
        _hold(api, resource, events, fits, "ArchitectureConfigMapNotFound", str(exc))
        raise
    except SpecRejected as exc:
        fits = condition("ModelFits", "False", "InvalidArchitecture", str(exc), generation)
        _hold(api, resource, events, fits, "InvalidArchitecture", str(exc))
        raise
    verdict = evaluate_fit(resource.spec, architecture, source)
    fits = _fits_condition(verdict, generation)
    if verdict.blocks_pods:
        message = f"{verdict.message}; no pods are created for generation {generation}"
        plan = plan_status(verdict.plan) if verdict.plan is not None else None
        _hold(api, resource, events, fits, verdict.reason, message, {"plan": plan})
        raise SpecRejected(f"{verdict.reason}: {verdict.message}")

    loop_owned = resource.spec.scaling.loop_owned
    latest_status = resource.status
    if loop_owned and not fresh:
        # The scaling loop may have moved status.desiredReplicas since this body was read.
        current = api.get(resource.api_version, resource.kind, meta.namespace, meta.name)
        if current is not None and current.get("status"):
            latest_status = LLMDeploymentStatus.model_validate(current["status"])
    replicas = desired_replicas(resource.spec, latest_status)
    serving = resolve_serving(resource.spec, verdict.plan)
    owner = owner_reference(resource.api_version, resource.kind, meta.name, meta.uid)
    try:
        deployment = apply_workload(api, resource, serving, owner, replicas)
        api.apply(build_service(resource, owner, leaders_only=serving.multi_node))
        if _network_policy.enabled:
            api.apply(build_network_policy(resource, owner, _network_policy))
        pdb_key = f"{meta.namespace}/{meta.name}"
        if wants_pdb(replicas):
            api.apply(build_pdb(resource, owner))
            _PDB_KNOWN_ABSENT.discard(pdb_key)
        elif pdb_key not in _PDB_KNOWN_ABSENT:
            api.delete("policy/v1", "PodDisruptionBudget", meta.namespace, meta.name)
            _PDB_KNOWN_ABSENT.add(pdb_key)
    except ApiRejectedError as exc:
        _hold(api, resource, events, fits, "ChildRejected", str(exc))
        raise SpecRejected(str(exc)) from exc
    except LeaderWorkerSetMissing as exc:
        plan = plan_status(verdict.plan) if verdict.plan is not None else None
        _hold(api, resource, events, fits, REASON_LWS_MISSING, str(exc), {"plan": plan})
        raise RetryLater(str(exc), exc.delay) from exc
    _apply_pod_monitor(api, resource, owner)

    first_time = resource.status is None or resource.status.observed_generation is None
    if first_time:
        workload = (
            f"LeaderWorkerSet ({serving.nodes_per_replica} nodes per replica)"
            if serving.multi_node
            else "Deployment"
        )
        events.emit("Normal", "Created", f"{workload} and Service {meta.name} created ({replicas} replicas)")
    elif resource.status is not None and resource.status.observed_generation != generation:
        events.emit("Normal", "Updated", f"generation {generation} applied; the Deployment rolls out")

    deployment_status = deployment.get("status") or {}
    pods: list[dict[str, Any]] = []
    if replicas > 0 and int(deployment_status.get("readyReplicas") or 0) < replicas:
        pods = api.list("v1", "Pod", meta.namespace, selector_string(meta.name))
    state, reason, message = readiness.ready_verdict(
        readiness.ReadinessInputs(replicas, deployment, generation, pods)
    )
    ready = condition("Ready", state, reason, message, generation)
    conditions = [fits, ready]
    strategy = concrete_strategy(resource.spec, latest_status)
    if not loop_owned:
        conditions.append(
            condition("ScalingActive", "False", "FixedReplicas", "strategy Warm: replicas follow the spec")
        )
    elif latest_status is None or latest_status.condition("ScalingActive") is None:
        conditions.append(
            condition(
                "ScalingActive", "Unknown", "AwaitingScalingLoop", "the scaling loop has not decided yet"
            )
        )
    fields: dict[str, Any] = {
        "replicas": int(deployment_status.get("replicas") or 0),
        "readyReplicas": int(deployment_status.get("readyReplicas") or 0),
        "endpoint": endpoint_url(meta.name, meta.namespace),
        "observedGeneration": generation,
        "selector": pod_selector(meta.name, serving),
        "nodesPerReplica": serving.nodes_per_replica,
        "plan": plan_status(verdict.plan) if verdict.plan is not None else None,
    }
    # For loop-owned strategies the loop owns desiredReplicas (and, for Auto, strategy): only seed them.
    if not loop_owned or latest_status is None or latest_status.desired_replicas is None:
        fields["desiredReplicas"] = replicas
    if resource.spec.scaling.strategy != "Auto" or latest_status is None or latest_status.strategy is None:
        fields["strategy"] = strategy
    stored = write_status(api, meta.namespace, meta.name, fields, conditions, now=_now())
    _transition_events(events, resource.status, [fits, ready], generation)
    return ReconcileResult(replicas, ready, fits, stored)

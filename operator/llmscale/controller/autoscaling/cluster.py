"""`AutoscaleCluster` over the Kubernetes API (the scaling loop's I/O; sync client in threads).

- list_workloads: ONE list of managed Deployments and ONE list of managed pods per tick, all
  namespaces (or the operator's namespaces), as raw JSON (no model deserialisation: cheap at
  thousands of pods).
- scale: the operator's serialised path, `ReconcileQueue.scale_to` (writes status.desiredReplicas,
  then reconciles, under the same per-object lock as every other reconcile), so the loop and the
  reconcile never fight over the Deployment's replicas and never overlap.
- patch_status: H5's `controller.status.write_status` (fresh read, conditions merged by type,
  resourceVersion, retry on conflict).
- set_deletion_costs: reads each Ready pod's in-flight requests straight from its /metrics
  (`vllm:num_requests_running + vllm:num_requests_waiting`; fresher than a Prometheus scrape)
  and annotates `controller.kubernetes.io/pod-deletion-cost` with it, so the ReplicaSet deletes
  the idlest pods first. A pod whose count cannot be read gets a high cost (keep it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families
from urllib3.exceptions import HTTPError

from llmscale.api import Condition
from llmscale.controller.autoscaling.gather import WorkloadSnapshot
from llmscale.controller.events import EventPoster
from llmscale.controller.kube import KubeApi
from llmscale.controller.reconcile_queue import ReconcileQueue
from llmscale.controller.status import write_status
from llmscale.errors import LLMScaleError, TransientError
from llmscale.metrics import DeploymentKey
from llmscale.resources.labels import DEPLOYMENT_LABEL, MANAGED_BY_LABEL, MANAGER, ROLE_LABEL, ROLE_WORKER
from llmscale.resources.leaderworkerset import (
    LWS_API_VERSION,
    LWS_GROUP,
    LWS_KIND,
    LWS_PLURAL,
    LWS_VERSION,
    lws_name,
)
from llmscale.scaling.coldstart import pod_is_ready

log = logging.getLogger(__name__)

DELETION_COST_ANNOTATION: Final = "controller.kubernetes.io/pod-deletion-cost"
UNKNOWN_IN_FLIGHT_COST: Final = 1_000_000
POD_METRICS_TIMEOUT_SECONDS: Final = 1.0
IN_FLIGHT_METRICS: Final = ("vllm:num_requests_running", "vllm:num_requests_waiting")
SELECTOR: Final = f"{MANAGED_BY_LABEL}={MANAGER},{DEPLOYMENT_LABEL}"


def _wrap(exc: Exception, what: str) -> LLMScaleError:
    if isinstance(exc, ApiException):
        return TransientError(f"{what}: HTTP {exc.status} {exc.reason}")
    return TransientError(f"{what}: {exc}")


def in_flight_from_metrics(text: str) -> float | None:
    """Running + waiting requests from a vLLM /metrics body (both name generations share these)."""
    total = 0.0
    found = False
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in IN_FLIGHT_METRICS:
                total += float(sample.value)
                found = True
    return total if found else None


def deletion_costs(in_flight: dict[str, float | None]) -> dict[str, int]:
    """pod name -> deletion cost: the in-flight count (lowest is deleted first); unknown = keep."""
    return {
        pod: UNKNOWN_IN_FLIGHT_COST if count is None else round(count) for pod, count in in_flight.items()
    }


class KubeAutoscaleCluster:
    def __init__(
        self,
        api: KubeApi,
        reconciles: ReconcileQueue,
        namespaces: Iterable[str] = (),
        max_workers: int = 8,
    ) -> None:
        self.api = api
        self.reconciles = reconciles
        self.apps = client.AppsV1Api(api.api_client)
        self.core = client.CoreV1Api(api.api_client)
        self.custom = client.CustomObjectsApi(api.api_client)
        self.namespaces = tuple(namespaces)
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="autoscale-kube")

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _list_call(self, kind: str, namespace: str | None) -> Any:
        # _preload_content=False: the raw JSON, without building typed models for every pod
        if kind == LWS_PLURAL:  # multi-node replicas (controller/workload.py)
            return (
                self.custom.list_cluster_custom_object(
                    LWS_GROUP, LWS_VERSION, LWS_PLURAL, label_selector=SELECTOR, _preload_content=False
                )
                if namespace is None
                else self.custom.list_namespaced_custom_object(
                    LWS_GROUP,
                    LWS_VERSION,
                    namespace,
                    LWS_PLURAL,
                    label_selector=SELECTOR,
                    _preload_content=False,
                )
            )
        if kind == "deployments":
            if namespace is None:
                return self.apps.list_deployment_for_all_namespaces(
                    label_selector=SELECTOR, _preload_content=False
                )
            return self.apps.list_namespaced_deployment(
                namespace, label_selector=SELECTOR, _preload_content=False
            )
        if namespace is None:
            return self.core.list_pod_for_all_namespaces(label_selector=SELECTOR, _preload_content=False)
        return self.core.list_namespaced_pod(namespace, label_selector=SELECTOR, _preload_content=False)

    def _list(self, kind: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        scopes: tuple[str | None, ...] = self.namespaces or (None,)
        for namespace in scopes:
            try:
                raw: Any = self._list_call(kind, namespace)
            except (ApiException, HTTPError) as exc:
                raise _wrap(exc, f"list {kind}") from exc
            items.extend(json.loads(raw.data).get("items") or ())
        return items

    def _list_leader_worker_sets(self) -> list[dict[str, Any]]:
        return self._list(LWS_PLURAL) if self.api.has_api(LWS_API_VERSION, LWS_PLURAL) else []

    async def list_workloads(self) -> dict[DeploymentKey, WorkloadSnapshot]:
        deployments, groups, pods = await asyncio.gather(
            self._run(self._list, "deployments"),
            self._run(self._list_leader_worker_sets),
            self._run(self._list, "pods"),
        )
        # A LeaderWorkerSet counts groups in replicas/readyReplicas, like a Deployment counts pods.
        deployments = [*deployments, *groups]
        by_key: dict[DeploymentKey, list[dict[str, Any]]] = {}
        for pod in pods:
            meta = pod.get("metadata") or {}
            if (meta.get("labels") or {}).get(ROLE_LABEL) == ROLE_WORKER:
                continue  # a group is measured and costed through its leader
            owner = (meta.get("labels") or {}).get(DEPLOYMENT_LABEL)
            if owner:
                by_key.setdefault((meta.get("namespace", "default"), owner), []).append(pod)
        result: dict[DeploymentKey, WorkloadSnapshot] = {}
        for deployment in deployments:
            meta = deployment.get("metadata") or {}
            owner = (meta.get("labels") or {}).get(DEPLOYMENT_LABEL) or meta.get("name")
            key = (str(meta.get("namespace", "default")), str(owner))
            spec_replicas = (deployment.get("spec") or {}).get("replicas")
            ready = (deployment.get("status") or {}).get("readyReplicas") or 0
            result[key] = WorkloadSnapshot(
                replicas=int(spec_replicas if spec_replicas is not None else 1),
                ready_replicas=int(ready),
                pods=tuple(by_key.get(key, ())),
            )
        return result

    async def get_replicas(self, namespace: str, name: str) -> int | None:
        deployment = await self._run(self.api.get, "apps/v1", "Deployment", namespace, name)
        if deployment is None and await self._run(self.api.has_api, LWS_API_VERSION, LWS_PLURAL):
            deployment = await self._run(self.api.get, LWS_API_VERSION, LWS_KIND, namespace, lws_name(name))
        if deployment is None:
            return None
        replicas = (deployment.get("spec") or {}).get("replicas")
        return int(replicas if replicas is not None else 1)

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        try:
            await self.reconciles.scale_to(namespace, name, replicas)
        except LLMScaleError:
            raise
        except Exception as exc:  # reconcile's own RetryLater/SpecRejected are LLMScaleErrors too
            raise TransientError(f"scale {namespace}/{name} to {replicas}: {exc}") from exc

    async def wake(self, namespace: str, name: str, replicas: int) -> None:
        """0 -> N on the activation signal, fast: desiredReplicas first (so any reconcile applies
        the same number), then the Deployment's /scale directly (one PATCH: the pod is created
        without waiting for a full reconcile, or for a reconcile of this object that holds its
        turn), then the usual serialised reconcile (`ReconcileQueue.scale_to`)."""
        await self._run(write_status, self.api, namespace, name, {"desiredReplicas": replicas}, [])
        scale = {"spec": {"replicas": replicas}}
        try:
            try:
                await self._run(self.apps.patch_namespaced_deployment_scale, name, namespace, scale)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                # a multi-node replica: the LeaderWorkerSet's /scale counts groups
                await self._run(
                    self.custom.patch_namespaced_custom_object_scale,
                    LWS_GROUP,
                    LWS_VERSION,
                    namespace,
                    LWS_PLURAL,
                    lws_name(name),
                    scale,
                )
        except (ApiException, HTTPError) as exc:
            log.warning("fast scale of %s/%s failed (%s); reconciling instead", namespace, name, exc)
        await self.scale(namespace, name, replicas)

    async def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], conditions: list[dict[str, Any]] | None
    ) -> None:
        models = [Condition.model_validate(c) for c in conditions or ()]
        await self._run(write_status, self.api, namespace, name, status, models)

    async def post_event(
        self, namespace: str, name: str, uid: str | None, type_: str, reason: str, message: str
    ) -> None:
        await self._run(EventPoster(self.core, namespace, name, uid).emit, type_, reason, message)

    async def set_deletion_costs(self, namespace: str, pods: tuple[dict[str, Any], ...]) -> None:
        ready = [
            p for p in pods if pod_is_ready(p) and not (p.get("metadata") or {}).get("deletionTimestamp")
        ]
        counts = await asyncio.gather(*(self._run(self._pod_in_flight, p) for p in ready))
        costs = deletion_costs({p["metadata"]["name"]: c for p, c in zip(ready, counts, strict=True)})
        for pod_name, cost in costs.items():
            patch = {"metadata": {"annotations": {DELETION_COST_ANNOTATION: str(cost)}}}
            try:
                await self._run(self.core.patch_namespaced_pod, pod_name, namespace, patch)
            except (ApiException, HTTPError) as exc:
                raise _wrap(exc, f"annotate pod {namespace}/{pod_name}") from exc

    @staticmethod
    def _pod_in_flight(pod: dict[str, Any]) -> float | None:
        ip = (pod.get("status") or {}).get("podIP")
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        port = annotations.get("prometheus.io/port", "8000")
        path = annotations.get("prometheus.io/path", "/metrics")
        if not ip:
            return None
        try:
            with urllib.request.urlopen(
                f"http://{ip}:{port}{path}", timeout=POD_METRICS_TIMEOUT_SECONDS
            ) as response:
                return in_flight_from_metrics(response.read().decode("utf-8", "replace"))
        except (OSError, ValueError) as exc:
            log.info("in-flight of pod %s unknown: %s", (pod.get("metadata") or {}).get("name"), exc)
            return None

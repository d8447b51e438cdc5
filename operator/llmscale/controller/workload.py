"""The serving workload of an LLMDeployment: a Deployment, or a LeaderWorkerSet for multi-node.

A replica that fits one node is a Deployment pod; one that needs several nodes is a
LeaderWorkerSet group (resources/leaderworkerset.py) and `replicas` counts groups. Switching
between the two (a spec change moves the plan across the one-node line) removes the other kind.
Without the LeaderWorkerSet CRD a multi-node plan cannot be served: LeaderWorkerSetMissing says
what to install, the reconcile holds Ready=False with that message and retries.
"""

from __future__ import annotations

from typing import Any, Final

from llmscale.api import LLMDeployment
from llmscale.controller.kube import ClusterApi
from llmscale.errors import TransientError
from llmscale.resources import build_deployment
from llmscale.resources.labels import selector_string
from llmscale.resources.leaderworkerset import (
    LWS_API_VERSION,
    LWS_KIND,
    LWS_PLURAL,
    build_leader_worker_set,
    deployment_view,
    leader_selector_string,
    lws_name,
)
from llmscale.resources.serving import ServingConfig

REASON_LWS_MISSING: Final = "LeaderWorkerSetNotInstalled"
RETRY_MISSING_LWS_SECONDS: Final = 60.0
# Children this process has deleted or found absent (saves a DELETE per reconcile; a restart
# forgets and deletes once more).
_KNOWN_ABSENT: set[tuple[str, str, str]] = set()


class LeaderWorkerSetMissing(TransientError):
    """A multi-node plan needs the LeaderWorkerSet API, which the cluster does not serve."""

    def __init__(self, message: str, delay: float = RETRY_MISSING_LWS_SECONDS) -> None:
        super().__init__(message)
        self.delay = delay


def missing_message(serving: ServingConfig) -> str:
    return (
        f"one replica needs {serving.nodes_per_replica} nodes ({serving.nodes_per_replica} pods x"
        f" {serving.gpu_count} {serving.gpu_product}, pipeline parallel across nodes), served as a"
        f" LeaderWorkerSet, but the API server does not serve {LWS_PLURAL}.{LWS_API_VERSION}:"
        " install LeaderWorkerSet (sigs.k8s.io/lws, v0.8.0 or newer: its release manifests.yaml"
        " or Helm chart) and the deployment proceeds; or use a GPU product one node of which holds"
        " the model"
    )


def _delete_once(api: ClusterApi, api_version: str, kind: str, namespace: str, name: str) -> None:
    key = (kind, namespace, name)
    if key in _KNOWN_ABSENT:
        return
    api.delete(api_version, kind, namespace, name)
    _KNOWN_ABSENT.add(key)


def apply_workload(
    api: ClusterApi,
    resource: LLMDeployment,
    serving: ServingConfig,
    owner: dict[str, Any],
    replicas: int,
) -> dict[str, Any]:
    """Apply the workload; returns it Deployment-shaped (status in replicas) for the readiness rules.

    Raises LeaderWorkerSetMissing when a multi-node plan meets a cluster without the CRD.
    """
    meta = resource.metadata
    if serving.multi_node:
        if not api.has_api(LWS_API_VERSION, LWS_PLURAL):
            raise LeaderWorkerSetMissing(missing_message(serving))
        applied = api.apply(build_leader_worker_set(resource, serving, owner, replicas))
        _KNOWN_ABSENT.discard((LWS_KIND, meta.namespace, lws_name(meta.name)))
        _delete_once(api, "apps/v1", "Deployment", meta.namespace, meta.name)
        return deployment_view(applied)
    applied = api.apply(build_deployment(resource, serving, owner, replicas))
    _KNOWN_ABSENT.discard(("Deployment", meta.namespace, meta.name))
    if api.has_api(LWS_API_VERSION, LWS_PLURAL):
        _delete_once(api, LWS_API_VERSION, LWS_KIND, meta.namespace, lws_name(meta.name))
    return applied


def pod_selector(name: str, serving: ServingConfig) -> str:
    """status.selector (/scale, HPA): the pods that serve, i.e. a group's leader when multi-node."""
    return leader_selector_string(name) if serving.multi_node else selector_string(name)

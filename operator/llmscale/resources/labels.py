"""Labels, annotations and names shared by every child of an LLMDeployment (interfaces.md)."""

from __future__ import annotations

from typing import Any, Final

from llmscale.api import defaults

NAME_LABEL: Final = "app.kubernetes.io/name"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
DEPLOYMENT_LABEL: Final = "llmscale.dev/deployment"
ENGINE_NAME: Final = "vllm"
MANAGER: Final = "llmscale"
CONTAINER_NAME: Final = "vllm"

# Multi-node replicas (LeaderWorkerSet): which pod of a group serves the API.
ROLE_LABEL: Final = "llmscale.dev/role"
ROLE_LEADER: Final = "leader"
ROLE_WORKER: Final = "worker"

GPU_RESOURCE: Final = "nvidia.com/gpu"
GPU_PRODUCT_NODE_LABEL: Final = "nvidia.com/gpu.product"
GPU_TAINT_KEY: Final = "nvidia.com/gpu"

SCRAPE_ANNOTATIONS: Final = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": str(defaults.ENGINE_PORT),
    "prometheus.io/path": "/metrics",
}


def common_labels(name: str) -> dict[str, str]:
    """Labels on every child object and pod."""
    return {
        NAME_LABEL: ENGINE_NAME,
        MANAGED_BY_LABEL: MANAGER,
        INSTANCE_LABEL: name,
        DEPLOYMENT_LABEL: name,
    }


def selector_labels(name: str) -> dict[str, str]:
    """The immutable pod selector of the Deployment, Service, PDB and PodMonitor."""
    return {NAME_LABEL: ENGINE_NAME, DEPLOYMENT_LABEL: name}


def selector_string(name: str) -> str:
    """`status.selector` for the /scale subresource (kubectl scale, HPA)."""
    return ",".join(f"{key}={value}" for key, value in sorted(selector_labels(name).items()))


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    """Makes the child garbage-collected with its LLMDeployment."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(name: str, namespace: str, owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": common_labels(name),
        "ownerReferences": [owner],
    }


def endpoint_url(name: str, namespace: str) -> str:
    return f"http://{name}.{namespace}.svc:{defaults.ENGINE_PORT}/v1"

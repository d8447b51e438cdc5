"""Service, PodDisruptionBudget and PodMonitor of an LLMDeployment (pure builders)."""

from __future__ import annotations

from typing import Any, Final

from llmscale.api import LLMDeployment, defaults
from llmscale.resources import labels

PODMONITOR_GROUP: Final = "monitoring.coreos.com"
PODMONITOR_VERSION: Final = "v1"
PODMONITOR_PLURAL: Final = "podmonitors"


def build_service(
    resource: LLMDeployment, owner: dict[str, Any], *, leaders_only: bool = False
) -> dict[str, Any]:
    """`leaders_only` for a multi-node replica: only its leader pod runs the API server."""
    name = resource.metadata.name
    selector = labels.selector_labels(name)
    if leaders_only:
        selector = {**selector, labels.ROLE_LABEL: labels.ROLE_LEADER}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": labels.child_metadata(name, resource.metadata.namespace, owner),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {
                    "name": defaults.ENGINE_PORT_NAME,
                    "port": defaults.ENGINE_PORT,
                    "targetPort": defaults.ENGINE_PORT_NAME,
                    "protocol": "TCP",
                }
            ],
        },
    }


def wants_pdb(replicas: int) -> bool:
    """A PDB only protects something with more than one replica; with one it would block drains."""
    return replicas > 1


def build_pdb(resource: LLMDeployment, owner: dict[str, Any]) -> dict[str, Any]:
    name = resource.metadata.name
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": labels.child_metadata(name, resource.metadata.namespace, owner),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels.selector_labels(name)}},
    }


def build_pod_monitor(resource: LLMDeployment, owner: dict[str, Any]) -> dict[str, Any]:
    """For clusters running the Prometheus Operator; relabels like the annotation-based scrape."""
    name = resource.metadata.name
    return {
        "apiVersion": f"{PODMONITOR_GROUP}/{PODMONITOR_VERSION}",
        "kind": "PodMonitor",
        "metadata": labels.child_metadata(name, resource.metadata.namespace, owner),
        "spec": {
            "selector": {"matchLabels": labels.selector_labels(name)},
            "podMetricsEndpoints": [
                {
                    "port": defaults.ENGINE_PORT_NAME,
                    "path": "/metrics",
                    "interval": "15s",
                    "relabelings": [
                        {
                            "sourceLabels": ["__meta_kubernetes_pod_label_llmscale_dev_deployment"],
                            "targetLabel": "llmdeployment",
                        },
                        {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"},
                    ],
                }
            ],
        },
    }

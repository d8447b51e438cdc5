"""The NetworkPolicy of an LLMDeployment: who may open connections to its vLLM pods (pure).

vLLM's port serves every model request and /metrics, with no authentication of its own, so the
pods accept ingress only from:
- the llmscale gateway (which authenticates API keys), by its namespace and pod labels;
- Prometheus, by its namespace and pod labels (scraping /metrics);
- the deployment's own pods (multi-node groups talk among themselves).
Everything else, including other pods of the same namespace, is denied. Egress is left open:
vLLM downloads weights from a model hub or object store whose addresses only the user knows
(docs/security.md says what to add). Peers are namespace name AND pod labels; the
`kubernetes.io/metadata.name` namespace label is set by the API server and cannot be forged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from llmscale.api import LLMDeployment, defaults
from llmscale.errors import UserInputError
from llmscale.resources import labels

NAMESPACE_NAME_LABEL: Final = "kubernetes.io/metadata.name"
GATEWAY_POD_LABELS: Final = {"app.kubernetes.io/name": "llmscale", "app.kubernetes.io/component": "gateway"}
PROMETHEUS_POD_LABELS: Final = {"app.kubernetes.io/name": "prometheus"}


@dataclass(frozen=True)
class Peer:
    """Pods in one namespace with these labels (an empty label map: every pod of it)."""

    namespace: str
    pod_labels: dict[str, str] = field(default_factory=dict)

    def as_rule_peer(self) -> dict[str, Any]:
        return {
            "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: self.namespace}},
            "podSelector": {"matchLabels": dict(self.pod_labels)},
        }


@dataclass(frozen=True)
class NetworkPolicySettings:
    enabled: bool = True
    gateway: Peer = field(default_factory=lambda: Peer("llmscale-system", dict(GATEWAY_POD_LABELS)))
    prometheus: Peer = field(default_factory=lambda: Peer("monitoring", dict(PROMETHEUS_POD_LABELS)))


def parse_label_map(flag: str, text: str) -> dict[str, str]:
    """`k=v,k2=v2` -> dict; a bad entry is a UserInputError naming the flag and the entry."""
    result: dict[str, str] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        key, sep, value = entry.partition("=")
        if not sep or not key:
            raise UserInputError(f"{flag}: {entry!r} is not a key=value label")
        result[key.strip()] = value.strip()
    return result


def build_network_policy(
    resource: LLMDeployment, owner: dict[str, Any], settings: NetworkPolicySettings
) -> dict[str, Any]:
    name = resource.metadata.name
    own_pods = {"podSelector": {"matchLabels": labels.selector_labels(name)}}
    engine_port = [{"protocol": "TCP", "port": defaults.ENGINE_PORT}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": labels.child_metadata(name, resource.metadata.namespace, owner),
        "spec": {
            "podSelector": {"matchLabels": labels.selector_labels(name)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [settings.gateway.as_rule_peer(), settings.prometheus.as_rule_peer()],
                    "ports": engine_port,
                },
                # the pods of one multi-node group (leader and workers) reach each other on any port
                {"from": [own_pods]},
            ],
        },
    }

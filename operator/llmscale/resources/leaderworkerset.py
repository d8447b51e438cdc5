"""The LeaderWorkerSet of a multi-node LLMDeployment (pure: spec in, manifest dict out).

A replica too big for one node is a group of `nodes_per_replica` pods, one per node: the
leader starts a Ray head and, once every worker has joined, the vLLM API server with
`--tensor-parallel-size` = GPUs per node, `--pipeline-parallel-size` = nodes and
`--distributed-executor-backend ray` (vLLM's documented multi-node layout); each worker joins
the leader's Ray cluster and serves nothing itself. Both use the helper script vLLM ships in
its image (examples/online_serving/multi-node-serving.sh), as the LeaderWorkerSet project's own
vLLM example does. LeaderWorkerSet (sigs.k8s.io/lws) makes the group the unit of replication,
scheduling, restart and rollout: `spec.replicas` counts groups.

Both pod templates come from resources.deployment.pod_template (the same GPUs, volumes,
affinity, tolerations, probes and hardening as a single-node pod); only the command, the
probes of the worker and the role label differ.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, Final

from llmscale.api import LLMDeployment
from llmscale.resources import labels
from llmscale.resources.deployment import pod_template, vllm_args
from llmscale.resources.serving import ServingConfig

LWS_GROUP: Final = "leaderworkerset.x-k8s.io"
LWS_VERSION: Final = "v1"
LWS_API_VERSION: Final = f"{LWS_GROUP}/{LWS_VERSION}"
LWS_KIND: Final = "LeaderWorkerSet"
LWS_PLURAL: Final = "leaderworkersets"
# Labels the LWS controller sets on every pod of a group.
LWS_GROUP_KEY_LABEL: Final = "leaderworkerset.sigs.k8s.io/group-key"

ROLE_LABEL: Final = labels.ROLE_LABEL
ROLE_LEADER: Final = labels.ROLE_LEADER
ROLE_WORKER: Final = labels.ROLE_WORKER

# vLLM's multi-node helper inside the vllm/vllm-openai image. `leader` starts the Ray head and
# blocks until the cluster has --ray_cluster_size nodes; `worker` joins --ray_address and blocks.
MULTI_NODE_SCRIPT: Final = "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
RAY_PORT: Final = 6379
# LWS injects LWS_GROUP_SIZE and LWS_LEADER_ADDRESS into every container of a group.
# `$0 "$@"` is `vllm serve MODEL ...`: the command line stays in args, where it is readable.
LEADER_SCRIPT: Final = (
    f'bash {MULTI_NODE_SCRIPT} leader --ray_port={RAY_PORT} --ray_cluster_size="$LWS_GROUP_SIZE"'
    ' && exec "$0" "$@"'
)
WORKER_SCRIPT: Final = (
    f'exec bash {MULTI_NODE_SCRIPT} worker --ray_address="$LWS_LEADER_ADDRESS" --ray_port={RAY_PORT}'
)


LWS_NAME_SUFFIX: Final = "-lws"
_DNS_LABEL_MAX: Final = 63


def lws_name(name: str) -> str:
    """The LeaderWorkerSet's name: not the LLMDeployment's, because LWS creates a headless Service
    of its own name (the pods' DNS subdomain) and the serving Service already has that name.
    Long names keep a digest so the result stays a DNS label (it also names that Service)."""
    candidate = f"{name}{LWS_NAME_SUFFIX}"
    if len(candidate) <= _DNS_LABEL_MAX:
        return candidate
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    keep = _DNS_LABEL_MAX - len(LWS_NAME_SUFFIX) - len(digest) - 1
    return f"{name[:keep].rstrip('-')}-{digest}{LWS_NAME_SUFFIX}"


def role_selector_labels(name: str, role: str) -> dict[str, str]:
    return {**labels.selector_labels(name), ROLE_LABEL: role}


def leader_selector_string(name: str) -> str:
    """Pods that serve (the leaders): the Service's and /scale's selector of a multi-node replica."""
    return ",".join(
        f"{key}={value}" for key, value in sorted(role_selector_labels(name, ROLE_LEADER).items())
    )


def _with_role(template: dict[str, Any], role: str) -> dict[str, Any]:
    template["metadata"]["labels"] = {**template["metadata"]["labels"], ROLE_LABEL: role}
    return template


def _group_on_distinct_nodes(template: dict[str, Any], name: str) -> None:
    """No two pods of one group on the same node (each pipeline stage needs a node's GPUs)."""
    affinity = template["spec"].setdefault("affinity", {})
    anti = affinity.setdefault("podAntiAffinity", {})
    anti["requiredDuringSchedulingIgnoredDuringExecution"] = [
        *(anti.get("requiredDuringSchedulingIgnoredDuringExecution") or ()),
        {
            "labelSelector": {"matchLabels": labels.selector_labels(name)},
            # the group key's value is the pod's own: "not next to a pod of my group"
            "matchLabelKeys": [LWS_GROUP_KEY_LABEL],
            "topologyKey": "kubernetes.io/hostname",
        },
    ]


def leader_template(resource: LLMDeployment, serving: ServingConfig) -> dict[str, Any]:
    template = _with_role(pod_template(resource, serving), ROLE_LEADER)
    container = template["spec"]["containers"][0]
    container["command"] = ["/bin/bash", "-c", LEADER_SCRIPT, "vllm"]
    container["args"] = ["serve", *vllm_args(resource, serving), "--distributed-executor-backend", "ray"]
    container["ports"] = [
        *container.get("ports", ()),
        {"name": "ray", "containerPort": RAY_PORT, "protocol": "TCP"},
    ]
    _group_on_distinct_nodes(template, resource.metadata.name)
    return template


def worker_template(resource: LLMDeployment, serving: ServingConfig) -> dict[str, Any]:
    template = _with_role(pod_template(resource, serving), ROLE_WORKER)
    container = template["spec"]["containers"][0]
    container["command"] = ["/bin/bash", "-c", WORKER_SCRIPT]
    container["args"] = []
    # A worker serves no HTTP: its health is the group's (the leader's probes and LWS's
    # RecreateGroupOnPodRestart); nor does it export vLLM metrics.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        container.pop(probe, None)
    container["ports"] = []
    container.pop("lifecycle", None)  # nothing to drain: the leader finishes the requests
    annotations = dict(template["metadata"].get("annotations") or {})
    for key in labels.SCRAPE_ANNOTATIONS:
        annotations.pop(key, None)
    template["metadata"]["annotations"] = annotations
    _group_on_distinct_nodes(template, resource.metadata.name)
    return template


def build_leader_worker_set(
    resource: LLMDeployment, serving: ServingConfig, owner: dict[str, Any], replicas: int | None
) -> dict[str, Any]:
    """The LeaderWorkerSet manifest; `replicas` counts groups (None leaves it to another manager)."""
    if not serving.multi_node:
        raise ValueError("build_leader_worker_set: the serving config is single-node")
    name = resource.metadata.name
    spec: dict[str, Any] = {
        # Workers start with the leader: the leader's Ray head waits for them before vLLM starts.
        "startupPolicy": "LeaderCreated",
        "leaderWorkerTemplate": {
            "size": serving.nodes_per_replica,
            # A pipeline cannot lose a stage: any pod restart recreates the whole group.
            "restartPolicy": "RecreateGroupOnPodRestart",
            "leaderTemplate": leader_template(resource, serving),
            "workerTemplate": worker_template(resource, serving),
        },
        # Like the Deployment: one extra group during a rollout, never one fewer.
        "rolloutStrategy": {
            "type": "RollingUpdate",
            "rollingUpdateConfiguration": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "networkConfig": {"subdomainPolicy": "Shared"},
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    metadata = labels.child_metadata(name, resource.metadata.namespace, owner)
    metadata["name"] = lws_name(name)
    return {"apiVersion": LWS_API_VERSION, "kind": LWS_KIND, "metadata": metadata, "spec": spec}


def deployment_view(leader_worker_set: dict[str, Any]) -> dict[str, Any]:
    """A LeaderWorkerSet as the Deployment-shaped object the readiness rules read.

    LWS reports replicas, readyReplicas and updatedReplicas in groups but no observedGeneration;
    its updatedReplicas already says the rollout reached the latest spec.
    """
    view = copy.deepcopy(leader_worker_set)
    generation = (view.get("metadata") or {}).get("generation")
    status = dict(view.get("status") or {})
    status["observedGeneration"] = generation
    status.setdefault("replicas", 0)
    view["status"] = status
    return view

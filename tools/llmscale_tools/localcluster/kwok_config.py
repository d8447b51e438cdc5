"""KWOK stages (node and pod lifecycles) and the fake nodes of the local cluster.

Pod stages follow KWOK's *general* set (create -> ready -> delete honouring finalizers) rather
than the fast set, whose delete stage strips finalizers and would hide garbage-collection and
foreground-deletion behaviour from the tests. Differences from KWOK's stock general stages, and
why:
- no jitter: tests and cold-start measurements need reproducible timings;
- pod-create has no delay, so a pod gets its IP at once and the pod runner can start the
  process during the simulated cold start;
- pod-ready waits `llmscale.dev/startup-delay` (Go duration, default 1s): the cold start;
- pods the pod runner serves (label `llmscale.dev/runner`) get Ready by a second ready stage
  only once the runner has written `llmscale.dev/ready-at` (an RFC3339 time: the later of
  creation + start-up delay and the moment the process accepted a connection), so Ready never
  precedes a listening process;
- pod-delete waits 1 s (not a random share of the grace period); the pod runner, not KWOK,
  gives the process its grace period.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

STARTUP_DELAY_ANNOTATION = "llmscale.dev/startup-delay"
READY_AT_ANNOTATION = "llmscale.dev/ready-at"
RUNNER_LABEL = "llmscale.dev/runner"
DEFAULT_STARTUP_DELAY_MILLISECONDS = 1000
POD_DELETE_DELAY_MILLISECONDS = 1000
# KWOK manages only nodes carrying this annotation (so a real node added by hand is left alone).
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"
# Pod IPs come from this loopback range, so they answer on this machine; /16 leaves room for
# 65k pods, far above the 5 x 256 the nodes allow.
POD_CIDR = "127.64.0.0/16"
NODE_IP = "127.0.0.1"
# Node leases are renewed by KWOK; the status heartbeat below keeps conditions fresh too, well
# inside the node-lifecycle controller's grace period, so fake nodes never turn NotReady.
NODE_LEASE_DURATION_SECONDS = 40
NODE_HEARTBEAT_MILLISECONDS = 10000

_NODE_CONDITIONS_TEMPLATE = """\
{{ $now := Now }}
{{ $lastTransitionTime := or .metadata.creationTimestamp $now }}
conditions:
{{ range NodeConditions }}
- lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $lastTransitionTime | Quote }}
  message: {{ .message | Quote }}
  reason: {{ .reason | Quote }}
  status: {{ .status | Quote }}
  type: {{ .type | Quote }}
{{ end }}
addresses:
{{ with .status.addresses }}
{{ YAML . 1 }}
{{ else }}
- address: {{ NodeIP | Quote }}
  type: InternalIP
- address: {{ .metadata.name | Quote }}
  type: Hostname
{{ end }}
"""

_NODE_INITIALIZE_EXTRA = """\
allocatable:
{{ with .status.allocatable }}
{{ YAML . 1 }}
{{ else }}
  cpu: "8"
  memory: 32Gi
  pods: "256"
{{ end }}
capacity:
{{ with .status.capacity }}
{{ YAML . 1 }}
{{ else }}
  cpu: "8"
  memory: 32Gi
  pods: "256"
{{ end }}
nodeInfo:
  architecture: amd64
  containerRuntimeVersion: kwok
  kernelVersion: kwok
  kubeProxyVersion: kwok
  kubeletVersion: {{ printf "kwok-%s" Version | Quote }}
  operatingSystem: linux
  osImage: kwok
  machineID: ""
  bootID: ""
  systemUUID: ""
phase: Running
"""

_POD_CREATE_TEMPLATE = """\
{{ $now := Now }}
conditions:
- lastProbeTime: null
  lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: PodScheduled
- lastProbeTime: null
  lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastProbeTime: null
  lastTransitionTime: {{ $now | Quote }}
  message: 'containers with unready status: [{{ range .spec.containers }}{{ .name }} {{ end }}]'
  reason: ContainersNotReady
  status: "False"
  type: Ready
- lastProbeTime: null
  lastTransitionTime: {{ $now | Quote }}
  message: 'containers with unready status: [{{ range .spec.containers }}{{ .name }} {{ end }}]'
  reason: ContainersNotReady
  status: "False"
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    waiting:
      reason: ContainerCreating
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
phase: Pending
startTime: {{ $now | Quote }}
"""

_POD_READY_TEMPLATE = """\
{{ $now := Now }}
conditions:
- lastProbeTime: null
  lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: PodScheduled
- lastProbeTime: null
  lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastProbeTime: null
  lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Ready
- lastProbeTime: null
  lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: ContainersReady
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
phase: Running
"""


def _stage(name: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {"resourceRef": {"apiGroup": "v1", "kind": kind}, **spec},
    }


def _expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    expression: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        expression["values"] = list(values)
    return expression


_NODE_READY = '.status.conditions.[] | select( .type == "Ready" ) | .status'
_POD_INITIALIZED = '.status.conditions.[] | select( .type == "Initialized" ) | .status'


def _ready_stage(name: str, extra: dict[str, Any], delay: dict[str, Any]) -> dict[str, Any]:
    return _stage(
        name,
        "Pod",
        {
            "selector": {
                "matchExpressions": [
                    _expression(".metadata.deletionTimestamp", "DoesNotExist"),
                    _expression(_POD_INITIALIZED, "In", "True"),
                    _expression(".status.containerStatuses.[].state.running.startedAt", "DoesNotExist"),
                    extra,
                ]
            },
            "delay": delay,
            "next": {
                "event": {"type": "Normal", "reason": "Started", "message": "Started container"},
                "statusTemplate": _POD_READY_TEMPLATE,
            },
        },
    )


def render_stages() -> list[dict[str, Any]]:
    """The node and pod Stage objects KWOK loads with `--config`."""
    return [
        _stage(
            "node-initialize",
            "Node",
            {
                "selector": {"matchExpressions": [_expression(_NODE_READY, "NotIn", "True")]},
                "next": {"statusTemplate": _NODE_CONDITIONS_TEMPLATE + _NODE_INITIALIZE_EXTRA},
            },
        ),
        _stage(
            "node-heartbeat",
            "Node",
            {
                "selector": {
                    "matchExpressions": [
                        _expression(".status.phase", "In", "Running"),
                        _expression(_NODE_READY, "In", "True"),
                    ]
                },
                "delay": {"durationMilliseconds": NODE_HEARTBEAT_MILLISECONDS},
                "next": {"statusTemplate": _NODE_CONDITIONS_TEMPLATE},
            },
        ),
        _stage(
            "pod-create",
            "Pod",
            {
                "selector": {
                    "matchExpressions": [
                        _expression(".metadata.deletionTimestamp", "DoesNotExist"),
                        _expression(".status.podIP", "DoesNotExist"),
                    ]
                },
                "next": {
                    "event": {"type": "Normal", "reason": "Created", "message": "Created container"},
                    "statusTemplate": _POD_CREATE_TEMPLATE,
                },
            },
        ),
        _ready_stage(
            "pod-ready",
            _expression(f'.metadata.labels["{RUNNER_LABEL}"]', "DoesNotExist"),
            {
                "durationMilliseconds": DEFAULT_STARTUP_DELAY_MILLISECONDS,
                "durationFrom": {"expressionFrom": f'.metadata.annotations["{STARTUP_DELAY_ANNOTATION}"]'},
            },
        ),
        _ready_stage(
            "pod-ready-runner",
            _expression(f'.metadata.annotations["{READY_AT_ANNOTATION}"]', "Exists"),
            # an RFC3339 value means "at that time"; one already past means now
            {
                "durationMilliseconds": 0,
                "durationFrom": {"expressionFrom": f'.metadata.annotations["{READY_AT_ANNOTATION}"]'},
            },
        ),
        _stage(
            "pod-delete",
            "Pod",
            {
                "selector": {
                    "matchExpressions": [
                        _expression(".metadata.deletionTimestamp", "Exists"),
                        _expression(".metadata.finalizers", "DoesNotExist"),
                    ]
                },
                "delay": {"durationMilliseconds": POD_DELETE_DELAY_MILLISECONDS},
                "next": {"delete": True},
            },
        ),
    ]


def render_stages_yaml() -> str:
    return yaml.safe_dump_all(render_stages(), sort_keys=False)


def kwok_command(
    kwok_binary: str, kubeconfig: str, stages_file: str, server_port: int, pod_cidr: str = POD_CIDR
) -> list[str]:
    return [
        kwok_binary,
        f"--kubeconfig={kubeconfig}",
        f"--config={stages_file}",
        f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}={KWOK_NODE_ANNOTATION_VALUE}",
        f"--cidr={pod_cidr}",
        f"--node-ip={NODE_IP}",
        f"--node-lease-duration-seconds={NODE_LEASE_DURATION_SECONDS}",
        f"--server-address=127.0.0.1:{server_port}",
        # INFO logs every heartbeat patch of every node
        "--v=WARN",
    ]


@dataclasses.dataclass(frozen=True)
class FakeNode:
    """A fake node KWOK keeps Ready. gpu_product is the planner catalog name (None = CPU node)."""

    name: str
    gpu_product: str | None
    gpu_count: int
    cpu: str
    memory: str


# Catalog name -> (GPU feature discovery product label, memory in MiB as GFD reports it).
GFD_PRODUCTS: dict[str, tuple[str, int]] = {
    "H200": ("NVIDIA-H200", 143771),
    "H100-80GB": ("NVIDIA-H100-80GB-HBM3", 81559),
    "A100-80GB": ("NVIDIA-A100-SXM4-80GB", 81920),
    "A100-40GB": ("NVIDIA-A100-SXM4-40GB", 40960),
    "L40S": ("NVIDIA-L40S", 46068),
    "L4": ("NVIDIA-L4", 23034),
    "A10G": ("NVIDIA-A10G", 23028),
    "T4": ("Tesla-T4", 15360),
    "RTX-4090": ("NVIDIA-GeForce-RTX-4090", 24564),
}

PODS_PER_NODE = 256
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}

DEFAULT_NODES: tuple[FakeNode, ...] = (
    FakeNode("gpu-h100-0", "H100-80GB", 8, cpu="192", memory="2048Gi"),
    FakeNode("gpu-h100-1", "H100-80GB", 8, cpu="192", memory="2048Gi"),
    # two more 8-GPU H100 nodes: two replicas of a model that needs two nodes (multi-node e2e)
    FakeNode("gpu-h100-2", "H100-80GB", 8, cpu="192", memory="2048Gi"),
    FakeNode("gpu-h100-3", "H100-80GB", 8, cpu="192", memory="2048Gi"),
    FakeNode("gpu-a100-0", "A100-80GB", 8, cpu="128", memory="1024Gi"),
    FakeNode("gpu-l4-0", "L4", 4, cpu="48", memory="192Gi"),
    FakeNode("cpu-0", None, 0, cpu="16", memory="64Gi"),
)


def node_manifest(node: FakeNode) -> dict[str, Any]:
    """The Node object for one fake node, with GPU-feature-discovery labels and GPU taint."""
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node-role.kubernetes.io/worker": "",
        "type": "kwok",
    }
    resources = {
        "cpu": node.cpu,
        "memory": node.memory,
        "pods": str(PODS_PER_NODE),
        "ephemeral-storage": "1Ti",
    }
    taints: list[dict[str, str]] = []
    if node.gpu_product is not None:
        product, memory_mib = GFD_PRODUCTS[node.gpu_product]
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": product,
            "nvidia.com/gpu.memory": str(memory_mib),
            "nvidia.com/gpu.count": str(node.gpu_count),
            "llmscale.dev/gpu-product": node.gpu_product,
        }
        resources["nvidia.com/gpu"] = str(node.gpu_count)
        taints.append(dict(GPU_TAINT))
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": labels,
            "annotations": {
                KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            },
        },
        "spec": {"taints": taints},
        "status": {"allocatable": dict(resources), "capacity": dict(resources)},
    }

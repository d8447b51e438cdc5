"""A real local Kubernetes control plane for tests and the demo (test/demo infrastructure).

`LocalCluster` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK
(fake GPU nodes and pods with loopback IPs), Prometheus and the pod runner, all on
127.0.0.1. See docs/localcluster.md.
"""

from __future__ import annotations

from llmscale_tools.localcluster.cluster import ComponentStatus, LocalCluster
from llmscale_tools.localcluster.ports import ClusterPorts

__all__ = ["ClusterPorts", "ComponentStatus", "LocalCluster"]

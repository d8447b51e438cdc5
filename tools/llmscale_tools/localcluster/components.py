"""Command lines of the control-plane processes (pure: paths and ports in, argv out)."""

from __future__ import annotations

from pathlib import Path

from llmscale_tools.localcluster.layout import StateLayout
from llmscale_tools.localcluster.pki import CONTROLLER_MANAGER, FRONT_PROXY, SCHEDULER
from llmscale_tools.localcluster.ports import LOOPBACK, ClusterPorts

SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


def apiserver_url(ports: ClusterPorts) -> str:
    return f"https://{LOOPBACK}:{ports.apiserver}"


def etcd_url(ports: ClusterPorts) -> str:
    return f"http://{LOOPBACK}:{ports.etcd_client}"


def etcd_command(bin_dir: Path, layout: StateLayout, ports: ClusterPorts) -> list[str]:
    peer = f"http://{LOOPBACK}:{ports.etcd_peer}"
    return [
        str(bin_dir / "etcd"),
        "--name=default",
        f"--data-dir={layout.etcd_data}",
        f"--listen-client-urls={etcd_url(ports)}",
        f"--advertise-client-urls={etcd_url(ports)}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=default={peer}",
        # test data: durability is worthless here and fsync dominates latency on shared disks
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def apiserver_command(bin_dir: Path, layout: StateLayout, ports: ClusterPorts) -> list[str]:
    pki = layout.pki
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers={etcd_url(ports)}",
        f"--bind-address={LOOPBACK}",
        f"--advertise-address={LOOPBACK}",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={layout.work_dir('kube-apiserver')}",
        f"--tls-cert-file={pki.apiserver_cert}",
        f"--tls-private-key-file={pki.apiserver_key}",
        f"--client-ca-file={pki.ca_cert}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.service_account_public_key}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        # RBAC only: there are no kubelets, so the Node authorizer has nothing to authorise.
        "--authorization-mode=RBAC",
        # The default admission plugins stay on (NamespaceLifecycle, ServiceAccount,
        # DefaultTolerationSeconds, ResourceQuota, validating/mutating webhooks, ...), plus
        # ExtendedResourceToleration as GKE, EKS and AKS enable it: a pod requesting
        # nvidia.com/gpu gets the toleration for the GPU nodes' nvidia.com/gpu:NoSchedule taint.
        "--enable-admission-plugins=ExtendedResourceToleration",
        "--allow-privileged=true",
        # Request-header authentication for aggregated API servers (metrics adapters); without
        # it every controller logs "missing content for CA bundle" forever.
        f"--requestheader-client-ca-file={pki.ca_cert}",
        f"--requestheader-allowed-names={FRONT_PROXY.common_name}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki.client_cert(FRONT_PROXY)}",
        f"--proxy-client-key-file={pki.client_key(FRONT_PROXY)}",
        "--event-ttl=1h",
        "--profiling=false",
        "--v=1",
    ]


def _component_common(layout: StateLayout, name: str, kubeconfig: Path, port: int) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--cert-dir={layout.work_dir(name)}",
        # a single instance: skip the lease dance, which delays start-up by seconds
        "--leader-elect=false",
        "--profiling=false",
        "--v=1",
    ]


def controller_manager_command(bin_dir: Path, layout: StateLayout, ports: ClusterPorts) -> list[str]:
    pki = layout.pki
    return [
        str(bin_dir / "kube-controller-manager"),
        *_component_common(
            layout, "kube-controller-manager", pki.kubeconfig(CONTROLLER_MANAGER), ports.controller_manager
        ),
        # each controller acts as its own ServiceAccount, as on kubeadm clusters, so RBAC bugs in
        # what the operator expects of them show up here too
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--cluster-signing-cert-file={pki.ca_cert}",
        f"--cluster-signing-key-file={pki.ca_key}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        # The apiserver rejects loopback addresses in Endpoints and IPv4 EndpointSlices, so these
        # two controllers could only fail (and retry) for every Service; the
        # loopback-endpoints process publishes FQDN-typed slices instead.
        "--controllers=*,-endpointslice-controller,-endpoints-controller",
        # quick reaction in tests: scale-down of terminated pods, GC of orphans
        "--terminated-pod-gc-threshold=100",
        "--concurrent-deployment-syncs=10",
        "--concurrent-replicaset-syncs=10",
    ]


def scheduler_command(bin_dir: Path, layout: StateLayout, ports: ClusterPorts) -> list[str]:
    return [
        str(bin_dir / "kube-scheduler"),
        *_component_common(layout, "kube-scheduler", layout.pki.kubeconfig(SCHEDULER), ports.scheduler),
    ]

"""Fixed loopback ports of the local control plane, and clash detection."""

from __future__ import annotations

import dataclasses
import errno
import socket
from collections.abc import Iterable

from llmscale.errors import EnvironmentSetupError

LOOPBACK = "127.0.0.1"


@dataclasses.dataclass(frozen=True)
class ClusterPorts:
    """TCP ports on 127.0.0.1, in a high range that nothing else on a dev box uses by default."""

    etcd_client: int = 19379
    etcd_peer: int = 19380
    apiserver: int = 19443
    controller_manager: int = 19257
    scheduler: int = 19259
    kwok: int = 19247
    prometheus: int = 19090
    # the LeaderWorkerSet controller: admission webhooks (TLS), health probes, metrics
    lws_webhook: int = 19545
    lws_health: int = 19546
    lws_metrics: int = 19547
    # KWOK's pod IP range (loopback, so pod IPs answer here); two clusters need two ranges
    pod_cidr: str = "127.64.0.0/16"

    def by_component(self) -> dict[str, int]:
        """Component name (as in `llmscale cluster status`) -> port, for messages and checks."""
        return {
            "etcd": self.etcd_client,
            "etcd-peer": self.etcd_peer,
            "kube-apiserver": self.apiserver,
            "kube-controller-manager": self.controller_manager,
            "kube-scheduler": self.scheduler,
            "kwok": self.kwok,
            "prometheus": self.prometheus,
            "lws": self.lws_health,
            "lws-webhook": self.lws_webhook,
            "lws-metrics": self.lws_metrics,
        }

    def shifted(self, offset: int) -> ClusterPorts:
        """Every port moved by `offset` and the pod range moved by offset // 1000 (127.74.0.0/16
        for 10000): a second cluster beside the default one. Offsets that differ by at least 1000
        give clusters whose ports and pod ranges never collide (the default ports span < 400)."""
        moved = {name: port + offset for name, port in self._ports().items()}
        first, second = self.pod_cidr.split(".")[:2]
        pod_cidr = f"{first}.{(int(second) + offset // 1000) % 256}.0.0/16"
        return ClusterPorts(**moved, pod_cidr=pod_cidr)

    def _ports(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.type in ("int", int)}

    def validate(self) -> None:
        """Raise EnvironmentSetupError when two components share a port or one is out of range."""
        seen: dict[int, str] = {}
        for name, port in self.by_component().items():
            if not 1024 <= port <= 65535:
                raise EnvironmentSetupError(f"port for {name}: {port} is outside 1024..65535")
            if port in seen:
                raise EnvironmentSetupError(f"port {port} is given to both {seen[port]} and {name}")
            seen[port] = name


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something already listens on (or holds) host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR so that a socket in TIME_WAIT from our own previous run is not a clash.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def check_ports_free(ports: Iterable[tuple[str, int]]) -> None:
    """Raise one clear EnvironmentSetupError naming the first component whose port is taken."""
    for name, port in ports:
        if port_in_use(port):
            raise EnvironmentSetupError(
                f"port {port} on {LOOPBACK} (for {name}) is already in use by another process; "
                f"stop it (or run `llmscale cluster down`) and retry"
            )

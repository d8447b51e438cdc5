"""Two operator replicas with kopf peering on the local control plane: exactly one scales.

Replica A (priority 200) and replica B (priority 100) watch the same namespace through one
KopfPeering object, as the chart runs them with `operator.replicas: 2`. While A lives, B is
paused by kopf: it evaluates no decision and writes no status (its own /metrics say so), and
the Deployment's replicas never move. A is then killed with SIGKILL (no goodbye in the peering
object), and B must take over within the peering lifetime plus two ticks, continuing A's
decision history (status.lastDecisions keeps A's entries) without changing the replicas.

Measured here (2-core shared machine, peering lifetime 10 s, tick 2 s): see docs/operator.md.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from background import Sampler
from prometheus_client.parser import text_string_to_metric_families

from llmscale.controller.autoscaling.memory import MAX_LAST_DECISIONS
from llmscale_tools.demo.stack import emulated_llmdeployment

REPO = Path(__file__).resolve().parents[2]
PEERING_CRDS = REPO / "charts" / "llmscale" / "crds" / "kopf-peering.yaml"
GROUP, VERSION, PLURAL = "llmscale.dev", "v1alpha1", "llmdeployments"
PEERING = "llmscale-ha"
TICK_SECONDS = 2.0
PEERING_LIFETIME_SECONDS = 10
# kopf re-checks the peers when the dead one's record expires (lifetime after its last
# refresh), re-lists and restarts the daemons; the first tick boundary after that decides.
TAKEOVER_LIMIT_SECONDS = PEERING_LIFETIME_SECONDS + 2 * TICK_SECONDS + 10.0

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Replica:
    """One `llmscale operator` process with peering, and what its own /metrics say."""

    def __init__(
        self, name: str, priority: int, kubeconfig: Path, prometheus_url: str, namespace: str
    ) -> None:
        self.name, self.priority = name, priority
        self.metrics_port = free_port()
        self.log_path = Path(f"/tmp/{namespace}-{name}.log")
        argv = [
            sys.executable, "-m", "llmscale", "operator", "--namespace", namespace, "--install-crd",
            "--peering", PEERING, "--priority", str(priority),
            "--peering-lifetime", str(PEERING_LIFETIME_SECONDS),
        ]  # fmt: skip
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "LLMSCALE_PROMETHEUS_URL": prometheus_url,
            "LLMSCALE_SCALING_INTERVAL": str(TICK_SECONDS),
            "LLMSCALE_STATUS_INTERVAL": str(TICK_SECONDS),
            "LLMSCALE_OPERATOR_METRICS_PORT": str(self.metrics_port),
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)

    def series(self) -> dict[str, float] | None:
        """Sum per metric family of this replica's scaling series; None while it does not answer."""
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return None
        sums: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                sums[sample.name] = sums.get(sample.name, 0.0) + float(sample.value)
        return sums

    def evaluations(self) -> float:
        return (self.series() or {}).get("llmscale_scaling_evaluations_total", 0.0)

    def status_writes(self) -> float:
        return (self.series() or {}).get("llmscale_scaling_status_writes_total", 0.0)

    def served(self) -> float:
        return (self.series() or {}).get("llmscale_scaling_deployments_served", 0.0)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])


class ReplicaWatch(Sampler):
    """Samples the Deployment's spec.replicas every 0.5 s in the background: flapping shows here."""

    def __init__(self, read: Callable[[], int | None]) -> None:
        super().__init__()
        self.read = read
        self.seen: list[tuple[float, int | None]] = []

    def sample(self) -> None:
        try:
            self.seen.append((time.monotonic(), self.read()))
        except Exception:  # the API server is shared: a failed read is not a value
            self.seen.append((time.monotonic(), None))

    def values(self) -> set[int]:
        return {v for _, v in self.seen if v is not None}


@pytest.fixture
def peering(kubectl: Callable[..., Any], namespace: str) -> str:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(PEERING_CRDS))
    kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=30s")
    manifest = "\n".join(
        [
            "apiVersion: kopf.dev/v1",
            "kind: KopfPeering",
            "metadata:",
            f"  name: {PEERING}",
            f"  namespace: {namespace}",
        ]
    )
    kubectl("apply", "-f", "-", input=manifest)
    return PEERING


def test_one_active_replica_scales_and_the_other_takes_over(
    cluster: Any,
    namespace: str,
    peering: str,
    custom_objects: Any,
    apps_v1: Any,
    wait_for: Callable[..., Any],
    report_figure: Callable[[str], None],
) -> None:
    if cluster.prometheus_url is None or not cluster.has_fake_gpu_nodes:
        pytest.skip("needs the local cluster's Prometheus and fake GPU nodes (LLMSCALE_CLUSTER=local)")
    name = "ha"
    first = Replica("a", 200, cluster.kubeconfig, str(cluster.prometheus_url), namespace)
    second: Replica | None = None
    try:
        wait_for(lambda: first.series() is not None, 90, "replica a's /metrics")
        custom_objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL,
            emulated_llmdeployment(name, namespace, strategy="Autoscaled", min_replicas=1, max_replicas=3),
        )  # fmt: skip

        def status() -> dict[str, Any]:
            body = custom_objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            return dict(body.get("status") or {})

        def deployment_replicas() -> int | None:
            return int(apps_v1.read_namespaced_deployment(name, namespace).spec.replicas)

        wait_for(lambda: status().get("lastDecisions"), 90, "replica a's first decision in status")
        wait_for(lambda: deployment_replicas() == 1, 60, "the Deployment at minReplicas 1")

        with ReplicaWatch(deployment_replicas) as watch:
            second = Replica("b", 100, cluster.kubeconfig, str(cluster.prometheus_url), namespace)
            wait_for(lambda: second.series() is not None, 90, "replica b's /metrics")
            # five ticks with both alive: a decides and writes, b does neither
            a_before = first.evaluations()
            time.sleep(5 * TICK_SECONDS)
            assert first.evaluations() >= a_before + 3, first.log_tail()
            assert first.served() == 1
            assert second.evaluations() == 0 and second.status_writes() == 0, second.log_tail()
            assert second.served() == 0
            history = status()["lastDecisions"]

            killed_at = time.monotonic()
            first.stop(signal.SIGKILL)
            wait_for(lambda: second.evaluations() > 0, TAKEOVER_LIMIT_SECONDS + 30, "replica b takes over")
            takeover_seconds = time.monotonic() - killed_at
            # b keeps deciding, on the same replicas, and writes status from now on
            wait_for(lambda: second.status_writes() > 0, 30, "replica b writes status")
            time.sleep(3 * TICK_SECONDS)
            after = status()

        report_figure(f"HA takeover after SIGKILL of the active replica: {takeover_seconds:.1f} s")
        assert takeover_seconds <= TAKEOVER_LIMIT_SECONDS, second.log_tail()
        assert second.served() == 1
        # no flapping: the Deployment sat at 1 replica through the whole hand-over
        assert watch.values() == {1}, watch.seen
        # no lost history: b continued a's list (older entries only drop off its front at the cap)
        continued = after["lastDecisions"]
        kept = [entry for entry in history if entry in continued]
        assert kept == history[len(history) - len(kept) :] and continued[: len(kept)] == kept
        assert len(kept) == len(history) or len(continued) == MAX_LAST_DECISIONS
        assert after.get("desiredReplicas") == 1
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop()

"""Acceptance: up/down/up leaves nothing behind; port clashes and Prometheus restarts behave.

The up/down cycle runs a second, private cluster (own state directory, ports shifted by 10000)
beside the session one, so it works whether or not the session cluster was already up.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmscale.errors import EnvironmentSetupError
from llmscale_tools.localcluster import ClusterPorts, LocalCluster
from llmscale_tools.localcluster import cli as cluster_cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SHIFTED = ClusterPorts().shifted(10000)


@pytest.fixture
def private_cluster(cluster: Any, tmp_path: Path) -> LocalCluster:
    if cluster.local is None:
        pytest.skip("the local control plane's lifecycle is only tested in local mode")
    return LocalCluster(tmp_path, ports=SHIFTED)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_up_down_up_leaves_no_process_behind(private_cluster: LocalCluster) -> None:
    pids: list[int] = []
    other_session = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        # round 1: two sessions call up() at once: one starts, the other waits and reuses it
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _i: private_cluster.up(), range(2)))
        assert sorted(bool(r) for r in results) == [False, True]
        status = private_cluster.status()
        assert private_cluster.is_up() and all(s.running for s in status), status
        pids += [s.pid for s in status if s.pid is not None]
        assert set(private_cluster.down()) == {s.name for s in status}
        assert [p for p in pids if _pid_alive(p)] == []
        assert not (private_cluster.state_dir / "etcd").exists()
        first_ca_pem = (private_cluster.state_dir / "pki" / "ca.crt").read_bytes()

        # round 2: sessions attach; the cluster stops when the last of them detaches
        assert private_cluster.attach() is True
        assert private_cluster.attach(pid=other_session.pid) is False
        pids += [s.pid for s in private_cluster.status() if s.pid is not None]
        assert private_cluster.detach() is False  # the other session still uses it
        assert private_cluster.is_up()
        assert private_cluster.detach(pid=other_session.pid) is True
        assert [p for p in pids if _pid_alive(p)] == []
        # credentials survive down/up, so clients holding the kubeconfig keep working
        assert (private_cluster.state_dir / "pki" / "ca.crt").read_bytes() == first_ca_pem
    finally:
        other_session.kill()
        other_session.wait()
        private_cluster.down()


def test_port_clash_is_one_clear_error_and_starts_nothing(private_cluster: LocalCluster) -> None:
    with socket.socket() as squatter:
        # SO_REUSEADDR: the port may still be in TIME_WAIT from the up/down test
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", SHIFTED.apiserver))
        squatter.listen()
        with pytest.raises(EnvironmentSetupError) as exc:
            private_cluster.up()
    assert f"port {SHIFTED.apiserver} on 127.0.0.1 (for kube-apiserver) is already in use" in str(exc.value)
    assert not any(s.running for s in private_cluster.status())


def test_cli_status_reports_stopped_components_with_exit_1(
    private_cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="llmscale")
    cluster_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["cluster", "status", "--json", "--root", str(private_cluster.root)])
    assert args.func(args) == 1
    names = {c["name"]: c["running"] for c in json.loads(capsys.readouterr().out)["components"]}
    assert names["kube-apiserver"] is False and "pod-runner" in names


def test_prometheus_can_be_stopped_and_restarted_mid_test(cluster: Any, wait_for: Callable[..., Any]) -> None:
    if cluster.local is None:
        pytest.skip("only the local cluster's Prometheus is ours to stop")
    local: LocalCluster = cluster.local
    local.stop_prometheus()
    try:
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"{local.prometheus_url}/-/ready", timeout=2)
    finally:
        local.start_prometheus()
    with urllib.request.urlopen(f"{local.prometheus_url}/-/ready", timeout=5) as response:
        assert response.status == 200

    # `up` while only Prometheus is down brings back Prometheus alone (no restart, same pids)
    pids = {s.name: s.pid for s in local.status()}
    local.stop_prometheus()
    assert local.up() == {}
    after = {s.name: s.pid for s in local.status()}
    assert after["prometheus"] is not None and after["prometheus"] != pids["prometheus"]
    assert {k: v for k, v in after.items() if k != "prometheus"} == {
        k: v for k, v in pids.items() if k != "prometheus"
    }

from __future__ import annotations

import datetime
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from llmscale_tools.localcluster import pod_processes as pp
from llmscale_tools.localcluster.runner import PodRunner

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _pod(
    uid: str = "u1", *, ip: str | None = "127.64.0.9", deleting: bool = False, rule: str = "sleep"
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": "p1",
        "namespace": "ns",
        "uid": uid,
        "labels": {pp.RUNNER_LABEL: rule, "app": "x"},
        "annotations": {"llmscale.dev/startup-delay": "5s"},
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "metadata": metadata,
        "spec": {
            "nodeName": "gpu-l4-0",
            "terminationGracePeriodSeconds": 2,
            "containers": [{"command": ["vllm", "serve"], "args": ["m", "--port", "8000"]}],
        },
        "status": {"podIP": ip, "phase": "Pending"} if ip else {"phase": "Pending"},
    }


class _FakeNode:
    def __init__(self) -> None:
        self.metadata = SimpleNamespace(labels={"nvidia.com/gpu.product": "NVIDIA-L4"})


class _FakeCore:
    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any]]] = []

    def read_node(self, _name: str) -> _FakeNode:
        return _FakeNode()

    def patch_namespaced_pod(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        self.patches.append((name, namespace, body))


def test_env_carries_pod_identity_args_and_node_labels() -> None:
    env = pp.pod_env(_pod(), {"nvidia.com/gpu.product": "NVIDIA-L4"})
    assert env["LLMSCALE_POD_IP"] == "127.64.0.9"
    assert json.loads(env["LLMSCALE_POD_ARGS"]) == ["vllm", "serve", "m", "--port", "8000"]
    assert json.loads(env["LLMSCALE_POD_ANNOTATIONS"]) == {"llmscale.dev/startup-delay": "5s"}
    assert json.loads(env["LLMSCALE_NODE_LABELS"]) == {"nvidia.com/gpu.product": "NVIDIA-L4"}


def test_only_labelled_pods_with_an_ip_and_not_terminating_want_a_process() -> None:
    assert pp.wants_process(_pod())
    assert not pp.wants_process(_pod(ip=None))
    assert not pp.wants_process(_pod(deleting=True))
    unlabelled = _pod()
    unlabelled["metadata"]["labels"] = {}
    assert not pp.wants_process(unlabelled)
    assert pp.rule_commands("py")["emulator"] == ["py", "-m", "llmscale_tools.emulator", "--pod-env"]


def _drain(runner: PodRunner, condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "runner did not reach the expected state"
        runner.tick()
        time.sleep(0.05)


def test_runner_starts_on_ip_terminates_on_deletion_and_never_restarts(tmp_path: Path) -> None:
    runner = PodRunner(_FakeCore(), tmp_path, {"sleep": SLEEPER})
    runner.handle(_pod(ip=None), deleted=False)
    assert runner.processes == {}
    runner.handle(_pod(), deleted=False)
    entry = runner.processes["u1"]
    assert entry.process.poll() is None
    runner.handle(_pod(deleting=True), deleted=False)
    _drain(runner, lambda: "u1" not in runner.processes)
    assert entry.process.returncode == -15  # SIGTERM, well before the 2 s grace ran out
    assert (tmp_path / "ns_p1.log").read_text().startswith("[pod-runner] starting")


def test_pre_stop_sleep_runs_before_sigterm_as_a_kubelet_does(tmp_path: Path) -> None:
    """preStop sleep 1 s inside a 2 s grace: the process still runs at 0.5 s, gets SIGTERM
    (not SIGKILL) after the sleep. vLLM 0.32 aborts in-flight requests on SIGTERM, so this
    window is what lets them finish."""
    pod = _pod()
    pod["spec"]["containers"][0]["lifecycle"] = {"preStop": {"sleep": {"seconds": 1}}}
    assert pp.pre_stop_sleep_seconds(pod) == 1.0 and pp.pre_stop_sleep_seconds(_pod()) == 0.0
    runner = PodRunner(_FakeCore(), tmp_path, {"sleep": SLEEPER})
    runner.handle(pod, deleted=False)
    entry = runner.processes["u1"]
    deleting = _pod(deleting=True)
    deleting["spec"] = pod["spec"]
    started = time.monotonic()
    runner.handle(deleting, deleted=False)
    time.sleep(0.5)
    runner.tick()
    assert entry.process.poll() is None, "SIGTERM came before the preStop sleep ended"
    _drain(runner, lambda: "u1" not in runner.processes)
    assert entry.process.returncode == -15
    assert 1.0 <= time.monotonic() - started < 2.0


def test_a_crashed_process_is_logged_not_restarted(tmp_path: Path) -> None:
    runner = PodRunner(_FakeCore(), tmp_path, {"crash": [sys.executable, "-c", "raise SystemExit(4)"]})
    runner.handle(_pod(rule="crash"), deleted=False)
    _drain(runner, lambda: not runner.processes)
    runner.handle(_pod(rule="crash"), deleted=False)  # a later MODIFIED event of the same pod
    assert runner.processes == {}, "a crashed pod's process was started again"
    log_text = (tmp_path / "ns_p1.log").read_text()
    assert "exited with status 4; not restarted" in log_text
    assert log_text.count("[pod-runner] starting") == 1
    runner.stop_all(1.0)


def test_a_recycled_ip_waits_for_the_draining_process(tmp_path: Path) -> None:
    marker = tmp_path / "handler-installed"
    ignore_term = [
        sys.executable,
        "-c",
        "import pathlib,signal,sys,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(sys.argv[1]).touch(); time.sleep(60)",
        str(marker),
    ]
    runner = PodRunner(_FakeCore(), tmp_path, {"sleep": ignore_term})
    try:
        runner.handle(_pod("old"), deleted=False)
        old = runner.processes["old"].process
        _drain(runner, marker.exists)  # the child ignores SIGTERM from here on
        runner.handle(_pod("old"), deleted=True)
        runner.handle(_pod("new"), deleted=False)
        assert "new" in runner.waiting and "new" not in runner.processes
        _drain(runner, lambda: "new" in runner.processes, timeout=10)  # after the SIGKILL at 2 s
        # the new pod's process starts only once the old one is dead (it may be reaped a tick later)
        assert old.poll() == -9
    finally:
        runner.stop_all(0.5)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_echo_server_answers_root_and_metrics_and_stops_on_sigterm() -> None:
    port = _free_port()
    env = os.environ | {
        "LLMSCALE_POD_IP": "127.0.0.1",
        "LLMSCALE_ECHO_PORT": str(port),
        "LLMSCALE_POD_NAME": "p",
    }
    server = subprocess.Popen([sys.executable, "-m", "llmscale_tools.localcluster.echo_server"], env=env)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    assert json.load(response)["pod"] == "p"
                break
            except OSError:
                assert time.monotonic() < deadline, "echo server did not come up"
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as response:
            text = response.read().decode()
        assert "llmscale_echo_up 1" in text
    finally:
        server.terminate()
        assert server.wait(timeout=10) == 0


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_finished_pods_want_no_process(phase: str) -> None:
    pod = _pod()
    pod["status"]["phase"] = phase
    assert not pp.wants_process(pod)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20s", 20.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("0", 0.0),
        ("20", None),
        ("abc", None),
    ],
)
def test_go_durations_parse_like_go(text: str, seconds: float | None) -> None:
    assert pp.parse_go_duration(text) == seconds


def test_ready_at_is_the_later_of_cold_start_end_and_listening() -> None:
    pod = _pod()
    pod["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    early = datetime.datetime(2026, 1, 1, 0, 0, 1, tzinfo=datetime.UTC)
    late = datetime.datetime(2026, 1, 1, 0, 0, 9, tzinfo=datetime.UTC)
    assert pp.rfc3339(pp.ready_at(pod, early)) == "2026-01-01T00:00:05.000000Z"  # 5s annotation
    assert pp.ready_at(pod, late) == late
    assert pp.serving_port(pod) == 8000
    pod["spec"]["containers"][0]["args"] = ["m", "--port=9001"]
    assert pp.serving_port(pod) == 9001


def test_runner_announces_a_listening_process_once(tmp_path: Path) -> None:
    port = _free_port()
    pod = _pod(ip="127.0.0.1")
    pod["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    pod["spec"]["containers"][0]["args"] = ["--port", str(port)]
    core = _FakeCore()
    runner = PodRunner(
        core, tmp_path, {"sleep": [sys.executable, "-m", "llmscale_tools.localcluster.echo_server"]}
    )
    runner.handle(pod, deleted=False)
    try:
        _drain(runner, lambda: core.patches, timeout=15)
        runner.tick()
        assert len(core.patches) == 1
        name, namespace, body = core.patches[0]
        assert (name, namespace) == ("p1", "ns")
        assert body["metadata"]["annotations"]["llmscale.dev/ready-at"].endswith("Z")
    finally:
        runner.stop_all(2.0)

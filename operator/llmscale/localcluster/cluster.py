"""`LocalCluster`: start, stop and inspect the local control plane (the Python API).

cluster = LocalCluster(Path("."))      # state in ./.localcluster
cluster.up()                            # idempotent; returns start-up seconds per component
cluster.kubeconfig, cluster.prometheus_url
cluster.stop_prometheus(); cluster.start_prometheus()
cluster.down()                          # stops everything, removes state (keeps bin/)
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmscale.errors import EnvironmentSetupError
from llmscale.localcluster import build, components, health, kwok_config, prometheus_config, supervisor
from llmscale.localcluster.layout import STATE_DIR_NAME, StateLayout
from llmscale.localcluster.pki import ADMIN, CLIENT_IDENTITIES, generate_pki, write_kubeconfig
from llmscale.localcluster.ports import ClusterPorts, check_ports_free

# Start order; `down` stops in reverse. The pod runner is last so every pod it sees is real.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "pod-discovery",
    "loopback-endpoints",
    "prometheus",
    "pod-runner",
)
CONTROL_PLANE_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)
START_TIMEOUT_SECONDS = 90.0
STOP_GRACE_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    pid: int | None
    port: int | None
    log: Path

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "running": self.running,
            "pid": self.pid,
            "port": self.port,
            "log": str(self.log),
        }


def find_prometheus() -> Path:
    found = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin:/usr/local/bin")
    if found is None:
        raise EnvironmentSetupError(
            "the `prometheus` binary is not installed; run `apt-get install prometheus` "
            "(then `systemctl stop prometheus`: the cluster runs its own)"
        )
    return Path(found)


class LocalCluster:
    """The local control plane whose state lives in `<root>/.localcluster/`."""

    def __init__(self, root: Path | None = None, *, ports: ClusterPorts | None = None) -> None:
        self.root = (root or Path.cwd()).resolve()
        self.layout = StateLayout(self.root / STATE_DIR_NAME)
        self.ports = ports or ClusterPorts()
        self.ports.validate()

    # -- the handle other code uses -----------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.layout.directory

    @property
    def kubeconfig(self) -> Path:
        return self.layout.kubeconfig

    @property
    def bin_dir(self) -> Path:
        return self.layout.bin_dir

    @property
    def pods_dir(self) -> Path:
        return self.layout.pods_dir

    @property
    def apiserver_url(self) -> str:
        return components.apiserver_url(self.ports)

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.prometheus}"

    def kubectl(self, *args: str) -> list[str]:
        """argv for kubectl against this cluster (run it with subprocess)."""
        return [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]

    # -- lifecycle ----------------------------------------------------------------------------
    def is_up(self) -> bool:
        """True when every component runs and the apiserver answers /readyz."""
        return all(s.running for s in self.status()) and self._apiserver_ready()

    def up(self, *, report: Callable[[str], None] | None = None) -> dict[str, float]:
        """Start everything (idempotent: a healthy running cluster is left alone).

        Returns seconds each step took. Raises EnvironmentSetupError with one clear message
        (missing binary, port in use, a component that died, with its log tail).
        """
        say = report or (lambda _message: None)
        if self.is_up():
            say("cluster already running")
            return {}
        if any(s.running for s in self.status()):
            say("a previous cluster is partly running; stopping it first")
            self.down()
        self._link_binaries()
        prometheus_binary = find_prometheus()
        check_ports_free(self.ports.by_component().items())
        self._reset_state()
        timings: dict[str, float] = {}
        started = time.monotonic()
        try:
            generate_pki(self.layout.pki)
            for identity in CLIENT_IDENTITIES:
                write_kubeconfig(
                    self.layout.pki, identity, self.apiserver_url, self.layout.pki.kubeconfig(identity)
                )
            timings["pki"] = time.monotonic() - started
            timings["etcd"] = self._start_and_wait(
                "etcd",
                components.etcd_command(self.bin_dir, self.layout, self.ports),
                lambda: health.http_ok(components.etcd_url(self.ports) + "/health"),
            )
            timings["kube-apiserver"] = self._start_and_wait(
                "kube-apiserver",
                components.apiserver_command(self.bin_dir, self.layout, self.ports),
                self._apiserver_ready,
            )
            write_kubeconfig(self.layout.pki, ADMIN, self.apiserver_url, self.kubeconfig)
            insecure = health.insecure_tls_context()
            timings["kube-controller-manager"] = self._start_and_wait(
                "kube-controller-manager",
                components.controller_manager_command(self.bin_dir, self.layout, self.ports),
                lambda: health.http_ok(
                    f"https://127.0.0.1:{self.ports.controller_manager}/healthz", context=insecure
                ),
            )
            timings["kube-scheduler"] = self._start_and_wait(
                "kube-scheduler",
                components.scheduler_command(self.bin_dir, self.layout, self.ports),
                lambda: health.http_ok(f"https://127.0.0.1:{self.ports.scheduler}/healthz", context=insecure),
            )
            timings["kwok"] = self._start_kwok()
            timings["nodes"] = self._create_nodes()
            timings["pod-discovery"] = self._start_pod_discovery()
            timings["loopback-endpoints"] = self._start_python_component(
                "loopback-endpoints", "llmscale.localcluster.loopback_endpoints"
            )
            timings["prometheus"] = self._start_prometheus(prometheus_binary)
            timings["pod-runner"] = self._start_pod_runner()
            timings["default-serviceaccount"] = self._wait_for_default_service_account()
        except BaseException:
            self.down(remove_state=False)
            raise
        timings["total"] = time.monotonic() - started
        say(f"cluster up in {timings['total']:.1f} s; KUBECONFIG={self.kubeconfig}")
        return timings

    def down(self, *, remove_state: bool = True) -> list[str]:
        """Stop every component (SIGTERM, SIGKILL after a grace period) and remove the state.

        Returns the names of the components that were running.
        """
        was_running = [name for name in reversed(COMPONENTS) if supervisor.running_pid(self.layout, name)]
        supervisor.stop_many(self.layout, list(reversed(COMPONENTS)), grace_seconds=STOP_GRACE_SECONDS)
        if remove_state:
            self._reset_state()
        return was_running

    def status(self) -> list[ComponentStatus]:
        ports: dict[str, int | None] = {
            **self.ports.by_component(),
            "pod-runner": None,
            "pod-discovery": None,
        }
        result = []
        for name in COMPONENTS:
            pid = supervisor.running_pid(self.layout, name)
            result.append(
                ComponentStatus(name, pid is not None, pid, ports.get(name), self.layout.log_file(name))
            )
        return result

    def stop_prometheus(self) -> None:
        """Stop Prometheus only (tests of the 'metrics unavailable' paths)."""
        supervisor.stop(self.layout, "prometheus", grace_seconds=STOP_GRACE_SECONDS)

    def start_prometheus(self) -> float:
        """(Re)start Prometheus with the same config and data directory; returns seconds taken."""
        if supervisor.running_pid(self.layout, "prometheus") is not None:
            return 0.0
        return self._start_prometheus(find_prometheus())

    # -- steps --------------------------------------------------------------------------------
    def _link_binaries(self) -> None:
        missing = build.missing_binaries(self.bin_dir, CONTROL_PLANE_BINARIES)
        if not missing:
            return
        cache = build.cache_root()
        cached = [c for c in build.ALL_COMPONENTS if build._is_complete(c, cache)]
        if {b for c in cached for b in c.binaries} >= set(missing):
            build.ensure_binaries(self.bin_dir, components=tuple(cached), report=lambda _m: None)
            return
        raise EnvironmentSetupError(
            f"{', '.join(missing)} not built yet (no {self.bin_dir / missing[0]}); "
            "run `llmscale cluster build` first"
        )

    def _reset_state(self) -> None:
        for entry in self.layout.state_entries():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        self.layout.directory.mkdir(parents=True, exist_ok=True)
        for directory in (
            self.layout.logs_dir,
            self.layout.run_dir,
            self.layout.pods_dir,
            self.layout.kwok_dir,
        ):
            directory.mkdir(parents=True, exist_ok=True)
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            self.layout.work_dir(name).mkdir(parents=True, exist_ok=True)

    def _start_and_wait(self, name: str, argv: list[str], is_ready: Callable[[], bool]) -> float:
        process = supervisor.start(self.layout, name, argv)
        return supervisor.wait_until_ready(
            self.layout, name, process, is_ready, timeout_seconds=START_TIMEOUT_SECONDS
        )

    def _apiserver_ready(self) -> bool:
        pki = self.layout.pki
        if not pki.ca_cert.exists():
            return False
        context = health.client_tls_context(pki.ca_cert, pki.client_cert(ADMIN), pki.client_key(ADMIN))
        return health.http_ok(self.apiserver_url + "/readyz", context=context)

    def _start_kwok(self) -> float:
        stages = self.layout.kwok_dir / "stages.yaml"
        stages.write_text(kwok_config.render_stages_yaml())
        argv = kwok_config.kwok_command(
            str(self.bin_dir / "kwok"), str(self.kubeconfig), str(stages), self.ports.kwok
        )
        return self._start_and_wait(
            "kwok", argv, lambda: health.http_ok(f"http://127.0.0.1:{self.ports.kwok}/healthz")
        )

    def _create_nodes(self) -> float:
        from llmscale.localcluster import kube  # the kubernetes client is heavy: import on use

        started = time.monotonic()
        kube.create_nodes(self.kubeconfig, [kwok_config.node_manifest(n) for n in kwok_config.DEFAULT_NODES])
        kube.wait_nodes_ready(
            self.kubeconfig, [n.name for n in kwok_config.DEFAULT_NODES], START_TIMEOUT_SECONDS
        )
        return time.monotonic() - started

    def _wait_for_default_service_account(self) -> float:
        from llmscale.localcluster import kube

        started = time.monotonic()
        kube.wait_service_account(self.kubeconfig, "default", "default", START_TIMEOUT_SECONDS)
        return time.monotonic() - started

    def _start_prometheus(self, binary: Path) -> float:
        prometheus_config.write_prometheus_config(self.apiserver_url, self.layout)
        return self._start_and_wait(
            "prometheus",
            prometheus_config.prometheus_command(binary, self.layout, self.ports.prometheus),
            lambda: health.http_ok(self.prometheus_url + "/-/ready"),
        )

    def _start_python_component(self, name: str, module: str) -> float:
        """A helper process of ours that signals readiness by creating run/<name>.ready."""
        ready_file = self.layout.run_dir / f"{name}.ready"
        ready_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", module, f"--kubeconfig={self.kubeconfig}", f"--ready-file={ready_file}"]
        return self._start_and_wait(name, argv, ready_file.exists)

    def _start_pod_discovery(self) -> float:
        targets = prometheus_config.targets_file(self.layout)
        targets.parent.mkdir(parents=True, exist_ok=True)
        targets.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "llmscale.localcluster.pod_discovery",
            f"--kubeconfig={self.kubeconfig}",
            f"--output={targets}",
        ]
        return self._start_and_wait("pod-discovery", argv, targets.exists)

    def _start_pod_runner(self) -> float:
        ready_file = self.layout.run_dir / "pod-runner.ready"
        ready_file.unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "llmscale.localcluster.runner",
            f"--kubeconfig={self.kubeconfig}",
            f"--pods-dir={self.pods_dir}",
            f"--ready-file={ready_file}",
        ]
        return self._start_and_wait("pod-runner", argv, ready_file.exists)

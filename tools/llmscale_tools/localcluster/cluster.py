"""`LocalCluster`: start, stop and inspect the local control plane (the Python API).

cluster = LocalCluster(Path("."))  # state in ./.localcluster
cluster.up()                       # idempotent; returns start-up seconds per component
cluster.kubeconfig, cluster.prometheus_url
cluster.stop_prometheus(); cluster.start_prometheus()
cluster.down()                     # stops everything, removes state (keeps bin/ and pki/)
cluster.attach(); cluster.detach() # shared use: the last user stops what attach started
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from llmscale.errors import EnvironmentSetupError
from llmscale_tools.localcluster import (
    build,
    components,
    health,
    kwok_config,
    lws,
    prometheus_config,
    sessions,
    supervisor,
)
from llmscale_tools.localcluster.layout import STATE_DIR_NAME, StateLayout
from llmscale_tools.localcluster.pki import (
    ADMIN,
    CLIENT_IDENTITIES,
    generate_pki,
    pki_is_usable,
    write_kubeconfig,
)
from llmscale_tools.localcluster.ports import ClusterPorts, check_ports_free

# Status order. `up` starts etcd, then the apiserver, then all the others at once; `down`
# stops in the waves below.
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
    "lws",
)
CONTROL_PLANE_BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "lws",
)
START_TIMEOUT_SECONDS = 90.0
STOP_GRACE_SECONDS = 10.0
# The apiserver shuts down gracefully only while etcd still answers, and the controllers and
# helpers while the apiserver does: stop in three waves, each wave in parallel.
STOP_WAVES = (
    tuple(name for name in reversed(COMPONENTS) if name not in ("kube-apiserver", "etcd")),
    ("kube-apiserver",),
    ("etcd",),
)
# (component name, argv, readiness probe)
_Launch = tuple[str, list[str], Callable[[], bool]]


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

    @classmethod
    def from_environment(cls, default_root: Path) -> LocalCluster:
        """The cluster the environment names: `LLMSCALE_LOCALCLUSTER_ROOT` (the directory that
        holds `.localcluster/`, else `default_root`) and `LLMSCALE_LOCALCLUSTER_PORT_OFFSET`
        (every port shifted, see `ClusterPorts.shifted`; else the default ports), as the e2e
        tests read them, so a demo or `llmscale cluster down` reaches an isolated cluster."""
        from llmscale.errors import UserInputError

        root = Path(os.environ.get("LLMSCALE_LOCALCLUSTER_ROOT") or default_root)
        raw = os.environ.get("LLMSCALE_LOCALCLUSTER_PORT_OFFSET") or "0"
        try:
            offset = int(raw)
        except ValueError:
            offset = -1
        if offset < 0:
            raise UserInputError(
                f"LLMSCALE_LOCALCLUSTER_PORT_OFFSET: value {raw!r} is invalid; expected an integer >= 0"
            )
        root.mkdir(parents=True, exist_ok=True)
        return cls(root, ports=ClusterPorts().shifted(offset) if offset else None)

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

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One `up`/`down` at a time per state directory: two test sessions starting together
        must not tear down each other's half-started cluster."""
        self.layout.directory.mkdir(parents=True, exist_ok=True)
        with self.layout.lock_file.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def up(self, *, report: Callable[[str], None] | None = None) -> dict[str, float]:
        """Start everything (idempotent: a healthy running cluster is left alone).

        Returns seconds each step took. Raises EnvironmentSetupError with one clear message
        (missing binary, port in use, a component that died, with its log tail).
        """
        with self._exclusive():
            return self._up(report)

    def _up(self, report: Callable[[str], None] | None) -> dict[str, float]:
        say = report or (lambda _message: None)
        with contextlib.suppress(EnvironmentSetupError):
            self._adopt_prometheus()
        if self.is_up():
            say("cluster already running")
            return {}
        not_running = {s.name for s in self.status() if not s.running}
        if not_running == {"prometheus"} and self._apiserver_ready():
            # a test stopped Prometheus: restarting everything would rotate nothing useful and
            # break every other session's watches, so only Prometheus comes back
            say("cluster running except Prometheus; starting Prometheus")
            self._start_prometheus(find_prometheus())
            return {}
        if any(s.running for s in self.status()):
            say("a previous cluster is partly running; stopping it first")
            self._down(remove_state=True)
        self._link_binaries()
        prometheus_binary = find_prometheus()
        check_ports_free(self.ports.by_component().items())
        self._reset_state()
        timings: dict[str, float] = {}
        started = time.monotonic()
        try:
            # Credentials survive restarts (as a real cluster's PKI does): a client that loaded
            # the kubeconfig before someone ran down/up keeps working.
            if not pki_is_usable(self.layout.pki):
                generate_pki(self.layout.pki)
            for identity in CLIENT_IDENTITIES:
                write_kubeconfig(
                    self.layout.pki, identity, self.apiserver_url, self.layout.pki.kubeconfig(identity)
                )
            timings["pki"] = time.monotonic() - started
            timings |= self._start_all(
                [
                    (
                        "etcd",
                        components.etcd_command(self.bin_dir, self.layout, self.ports),
                        lambda: health.http_ok(components.etcd_url(self.ports) + "/health"),
                    )
                ]
            )
            timings |= self._start_all(
                [
                    (
                        "kube-apiserver",
                        components.apiserver_command(self.bin_dir, self.layout, self.ports),
                        self._apiserver_ready,
                    )
                ]
            )
            write_kubeconfig(self.layout.pki, ADMIN, self.apiserver_url, self.kubeconfig)
            timings["lws-crd"] = self._install_leader_worker_set_api()
            # Everything else needs only the apiserver: start it all at once and wait once
            # (the Python helpers spend seconds importing the kubernetes client).
            timings |= self._start_all(self._second_wave(prometheus_binary))
            timings["nodes"] = self._create_nodes()
            timings["default-serviceaccount"] = self._wait_for_default_service_account()
        except BaseException:
            self._down(remove_state=False)
            raise
        timings["total"] = time.monotonic() - started
        say(f"cluster up in {timings['total']:.1f} s; KUBECONFIG={self.kubeconfig}")
        return timings

    def attach(self, pid: int | None = None) -> bool:
        """Use the cluster from process `pid` (default: this one): start it if needed, and
        register as a user. Returns True when this call started it. Pair with `detach`."""
        with self._exclusive():
            started = bool(self._up(None))
            if started:
                sessions.mark_auto_started(self.layout)
            sessions.register(self.layout, pid or os.getpid())
            return started

    def detach(self, pid: int | None = None) -> bool:
        """Stop using the cluster; the last user of a cluster that `attach` started stops it
        (a cluster started with `cluster up` keeps running). Returns True if it was stopped."""
        with self._exclusive():
            sessions.unregister(self.layout, pid or os.getpid())
            if sessions.live_users(self.layout) or not sessions.auto_started(self.layout):
                return False
            self._down(remove_state=True)
            return True

    def users(self) -> list[int]:
        """Pids of the processes attached right now."""
        return sessions.live_users(self.layout)

    def down(self, *, remove_state: bool = True) -> list[str]:
        """Stop every component (SIGTERM, SIGKILL after a grace period) and remove the state.

        Returns the names of the components that were running.
        """
        with self._exclusive():
            return self._down(remove_state=remove_state)

    def _down(self, *, remove_state: bool) -> list[str]:
        with contextlib.suppress(EnvironmentSetupError):
            self._adopt_prometheus()
        # pid files of components this version does not know (left by an older checkout) go first
        unknown = (
            sorted(p.stem for p in self.layout.run_dir.glob("*.pid") if p.stem not in COMPONENTS)
            if self.layout.run_dir.is_dir()
            else []
        )
        names = [*unknown, *reversed(COMPONENTS)]
        was_running = [name for name in names if supervisor.running_pid(self.layout, name)]
        for wave in ((*unknown, *STOP_WAVES[0]), *STOP_WAVES[1:]):
            supervisor.stop_many(self.layout, list(wave), grace_seconds=STOP_GRACE_SECONDS)
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
        with self._exclusive():
            self._adopt_prometheus()
            supervisor.stop(self.layout, "prometheus", grace_seconds=STOP_GRACE_SECONDS)

    def start_prometheus(self) -> float:
        """(Re)start Prometheus with the same config and data directory; returns seconds taken."""
        with self._exclusive():
            if self._adopt_prometheus() is not None:
                return 0.0
            return self._start_prometheus(find_prometheus())

    def _adopt_prometheus(self) -> int | None:
        """The pid of our Prometheus, re-recording it if its pid file was lost (two sessions
        that stopped and started it at the same moment)."""
        pid = supervisor.running_pid(self.layout, "prometheus")
        if pid is None:
            config = f"--config.file={self.layout.prometheus_dir / 'prometheus.yml'}"
            pid = supervisor.find_process(find_prometheus(), config)
            if pid is not None:
                self.layout.pid_file("prometheus").write_text(f"{pid}\n{find_prometheus()}\n")
        return pid

    # -- steps --------------------------------------------------------------------------------
    def _link_binaries(self) -> None:
        missing = build.missing_binaries(self.bin_dir, CONTROL_PLANE_BINARIES)
        if not missing:
            return
        cache = build.cache_root()
        cached = [c for c in build.ALL_COMPONENTS if build.is_complete(c, cache)]
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
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", lws.COMPONENT):
            self.layout.work_dir(name).mkdir(parents=True, exist_ok=True)

    def _start_all(self, launches: list[_Launch]) -> dict[str, float]:
        """Start every process, then wait for each to be ready; seconds from start to ready."""
        started = time.monotonic()
        processes = [
            (name, supervisor.start(self.layout, name, argv), ready) for name, argv, ready in launches
        ]
        timings: dict[str, float] = {}
        for name, process, ready in processes:
            remaining = START_TIMEOUT_SECONDS - (time.monotonic() - started)
            supervisor.wait_until_ready(
                self.layout, name, process, ready, timeout_seconds=max(remaining, 1.0)
            )
            timings[name] = time.monotonic() - started
        return timings

    def _second_wave(self, prometheus_binary: Path) -> list[_Launch]:
        insecure = health.insecure_tls_context()
        stages = self.layout.kwok_dir / "stages.yaml"
        stages.write_text(kwok_config.render_stages_yaml())
        targets = prometheus_config.targets_file(self.layout)
        targets.parent.mkdir(parents=True, exist_ok=True)
        prometheus_config.write_prometheus_config(self.apiserver_url, self.layout)
        return [
            (
                "kube-controller-manager",
                components.controller_manager_command(self.bin_dir, self.layout, self.ports),
                lambda: health.http_ok(
                    f"https://127.0.0.1:{self.ports.controller_manager}/healthz", context=insecure
                ),
            ),
            (
                "kube-scheduler",
                components.scheduler_command(self.bin_dir, self.layout, self.ports),
                lambda: health.http_ok(f"https://127.0.0.1:{self.ports.scheduler}/healthz", context=insecure),
            ),
            (
                "kwok",
                kwok_config.kwok_command(
                    str(self.bin_dir / "kwok"),
                    str(self.kubeconfig),
                    str(stages),
                    self.ports.kwok,
                    self.ports.pod_cidr,
                ),
                lambda: health.http_ok(f"http://127.0.0.1:{self.ports.kwok}/healthz"),
            ),
            self._python_launch(
                "pod-discovery",
                "llmscale_tools.localcluster.pod_discovery",
                f"--output={targets}",
                ready=targets,
            ),
            self._python_launch("loopback-endpoints", "llmscale_tools.localcluster.loopback_endpoints"),
            self._python_launch(
                "pod-runner", "llmscale_tools.localcluster.runner", f"--pods-dir={self.pods_dir}"
            ),
            (
                "prometheus",
                prometheus_config.prometheus_command(prometheus_binary, self.layout, self.ports.prometheus),
                lambda: health.http_ok(self.prometheus_url + "/-/ready"),
            ),
            (
                "lws",
                lws.command(self.bin_dir, self.layout, self.ports, self.kubeconfig),
                lambda: health.http_ok(lws.readyz_url(self.ports)),
            ),
        ]

    def _python_launch(self, name: str, module: str, *extra: str, ready: Path | None = None) -> _Launch:
        """One of our helper processes; it signals readiness by creating a file."""
        ready_file = ready or self.layout.run_dir / f"{name}.ready"
        ready_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", module, f"--kubeconfig={self.kubeconfig}", *extra]
        if ready is None:
            argv.append(f"--ready-file={ready_file}")
        return (name, argv, ready_file.exists)

    def _apiserver_ready(self) -> bool:
        pki = self.layout.pki
        if not pki.ca_cert.exists():
            return False
        context = health.client_tls_context(pki.ca_cert, pki.client_cert(ADMIN), pki.client_key(ADMIN))
        return health.http_ok(self.apiserver_url + "/readyz", context=context)

    def _create_nodes(self) -> float:
        from llmscale_tools.localcluster import kube  # the kubernetes client is heavy: import on use

        started = time.monotonic()
        kube.create_nodes(self.kubeconfig, [kwok_config.node_manifest(n) for n in kwok_config.DEFAULT_NODES])
        kube.wait_nodes_ready(
            self.kubeconfig, [n.name for n in kwok_config.DEFAULT_NODES], START_TIMEOUT_SECONDS
        )
        return time.monotonic() - started

    def _install_leader_worker_set_api(self) -> float:
        """The LeaderWorkerSet CRD and webhooks (served by the `lws` process of the second wave)."""
        from llmscale_tools.localcluster import kube

        started = time.monotonic()
        lws.issue_webhook_certificate(self.layout)
        kube.apply_manifests(
            self.kubeconfig,
            [lws.crd_manifest(self.bin_dir), *lws.webhook_configurations(self.layout, self.ports)],
        )
        kube.wait_crd_established(self.kubeconfig, lws.CRD_NAME, START_TIMEOUT_SECONDS)
        return time.monotonic() - started

    def install_leader_worker_set_crd(self) -> float:
        """Put the LeaderWorkerSet CRD back (tests remove it to see the operator without it)."""
        from llmscale_tools.localcluster import kube

        started = time.monotonic()
        kube.apply_manifests(self.kubeconfig, [lws.crd_manifest(self.bin_dir)])
        kube.wait_crd_established(self.kubeconfig, lws.CRD_NAME, START_TIMEOUT_SECONDS)
        return time.monotonic() - started

    def _wait_for_default_service_account(self) -> float:
        from llmscale_tools.localcluster import kube

        started = time.monotonic()
        kube.wait_service_account(self.kubeconfig, "default", "default", START_TIMEOUT_SECONDS)
        return time.monotonic() - started

    def _start_prometheus(self, binary: Path) -> float:
        prometheus_config.write_prometheus_config(self.apiserver_url, self.layout)
        launch: _Launch = (
            "prometheus",
            prometheus_config.prometheus_command(binary, self.layout, self.ports.prometheus),
            lambda: health.http_ok(self.prometheus_url + "/-/ready"),
        )
        return self._start_all([launch])["prometheus"]

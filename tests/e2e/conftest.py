"""Fixtures of the end-to-end tier: a real Kubernetes control plane per test session.

Fixture API (stable; other e2e test files rely on it)
-----------------------------------------------------
Session scope:
- ``cluster`` -> ``E2ECluster``: ``.mode`` ("local" | "existing" | "kind"), ``.kubeconfig: Path``,
  ``.prometheus_url: str | None``, ``.local: LocalCluster | None`` (the handle in local mode:
  ``.stop_prometheus()``, ``.start_prometheus()``, ``.pods_dir``, ``.bin_dir``),
  ``.has_fake_gpu_nodes: bool`` (True in local mode: nodes gpu-h100-0..3, gpu-a100-0, gpu-l4-0,
  cpu-0 of interfaces.md), ``.kubectl_path: Path``.
- ``api_client`` -> a ``kubernetes.client.ApiClient`` bound to the cluster.
- ``core_v1`` / ``apps_v1`` / ``custom_objects`` / ``rbac_v1`` -> the typed API objects.
- ``kube`` -> ``KubeClients`` factory: ``.core_v1()``, ``.apps_v1()``, ``.custom_objects()``,
  ``.rbac_v1()``, ``.api_client``, ``.for_kubeconfig(path)`` (clients as another identity).
- ``kubectl`` -> callable ``kubectl(*args, input=None, check=True, timeout=60) ->
  subprocess.CompletedProcess[str]`` running kubectl against the cluster.
- ``prometheus`` -> ``PrometheusHandle``: ``.url``, ``.query(promql) -> list[dict]`` (the
  ``data.result`` vector), ``.wait_for_series(promql, timeout=30) -> list[dict]`` (first non-empty
  answer). Skips the test when the mode has no Prometheus.
Function scope:
- ``namespace`` -> ``str``: a fresh namespace (its default ServiceAccount exists), deleted after.
- ``wait_for`` -> the ``wait_for(predicate, timeout, message, interval=0.2)`` helper below.

Modes (env ``LLMSCALE_CLUSTER``): ``local`` (default) starts the local control plane from
``.localcluster/`` of this checkout (``llmscale cluster build`` must have run) unless it runs
already; concurrent sessions share it, and the last one to finish stops it unless it was
started by hand (``llmscale cluster up``), which is then left running. For an isolated cluster
set ``LLMSCALE_LOCALCLUSTER_ROOT`` (a directory for its ``.localcluster/``) and
``LLMSCALE_LOCALCLUSTER_PORT_OFFSET`` (e.g. 10000);
``existing`` uses ``$KUBECONFIG`` and ``$LLMSCALE_PROMETHEUS_URL`` (optional); ``kind`` uses
pytest-kind and is skipped, with the reason, when Docker is absent.
Pods never run real containers here: tests needing container logs or exec must skip in local mode.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from llmscale_tools.localcluster import ClusterPorts, LocalCluster

REPO_ROOT = Path(__file__).resolve().parents[2]
MODES = ("local", "existing", "kind")


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    message: str,
    interval: float = 0.2,
    on_timeout: Callable[[], Any] | None = None,
) -> Any:
    """Call `predicate` until it returns something truthy (returned); fail after `timeout` s.

    Exceptions from the predicate count as "not yet" (the last one is shown on failure), and
    `on_timeout()`'s value (for example the last scaling decisions) joins the failure message.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            value, last_error = None, exc
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            if on_timeout is not None:
                try:
                    detail += f"; state: {on_timeout()!r}"
                except Exception as exc:  # the diagnosis must not hide the timeout
                    detail += f"; state unreadable: {exc!r}"
            pytest.fail(f"timed out after {timeout:.0f} s waiting for: {message}{detail}")
        time.sleep(interval)


@dataclasses.dataclass(frozen=True)
class E2ECluster:
    mode: str
    kubeconfig: Path
    prometheus_url: str | None
    local: LocalCluster | None
    kubectl_path: Path
    has_fake_gpu_nodes: bool


@dataclasses.dataclass(frozen=True)
class PrometheusHandle:
    url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns data.result (a list of {metric, value}). Raises on HTTP errors."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(address, timeout=5) as response:
            payload = json.load(response)
        if payload.get("status") != "success":
            raise AssertionError(f"Prometheus query {promql!r} failed: {payload}")
        result: list[dict[str, Any]] = payload["data"]["result"]
        return result

    def wait_for_series(self, promql: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        return list(wait_for(lambda: self.query(promql), timeout, f"PromQL {promql!r} to return series"))


class KubeClients:
    """Factory of typed API clients for the session cluster (or another kubeconfig)."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.api_client = config.new_client_from_config(config_file=str(kubeconfig))

    def core_v1(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api_client)

    def apps_v1(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api_client)

    def custom_objects(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api_client)

    def rbac_v1(self) -> client.RbacAuthorizationV1Api:
        return client.RbacAuthorizationV1Api(self.api_client)

    @staticmethod
    def for_kubeconfig(path: Path) -> KubeClients:
        return KubeClients(path)


def _docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    return probe.returncode == 0


@pytest.fixture(scope="session")
def cluster() -> Iterator[E2ECluster]:
    mode = os.environ.get("LLMSCALE_CLUSTER", "local")
    if mode not in MODES:
        pytest.fail(f"LLMSCALE_CLUSTER={mode!r} is not one of {', '.join(MODES)}")
    if mode == "existing":
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig or not Path(kubeconfig).is_file():
            pytest.fail(f"LLMSCALE_CLUSTER=existing needs KUBECONFIG pointing at a file (got {kubeconfig!r})")
        yield E2ECluster(
            mode=mode,
            kubeconfig=Path(kubeconfig),
            prometheus_url=os.environ.get("LLMSCALE_PROMETHEUS_URL"),
            local=None,
            kubectl_path=Path(shutil.which("kubectl") or REPO_ROOT / ".localcluster" / "bin" / "kubectl"),
            has_fake_gpu_nodes=False,
        )
        return
    if mode == "kind":
        if not _docker_available():
            pytest.skip(
                "LLMSCALE_CLUSTER=kind needs a working Docker engine (`docker info` failed or no docker)"
            )
        from pytest_kind import KindCluster

        kind = KindCluster("llmscale-e2e")
        kind.create()
        try:
            yield E2ECluster(
                mode=mode,
                kubeconfig=Path(kind.kubeconfig_path),
                prometheus_url=os.environ.get("LLMSCALE_PROMETHEUS_URL"),
                local=None,
                kubectl_path=Path(kind.kubectl_path),
                has_fake_gpu_nodes=False,
            )
        finally:
            kind.delete()
        return
    # an isolated cluster beside the shared one: another root and every port shifted
    root = Path(os.environ.get("LLMSCALE_LOCALCLUSTER_ROOT") or REPO_ROOT)
    offset = int(os.environ.get("LLMSCALE_LOCALCLUSTER_PORT_OFFSET") or 0)
    local = LocalCluster(root, ports=ClusterPorts().shifted(offset))
    # attach() starts the cluster unless it runs and registers this session as a user; the
    # last session to detach stops a cluster that a session started, one started by hand
    # with `llmscale cluster up` keeps running.
    local.attach()
    try:
        yield E2ECluster(
            mode=mode,
            kubeconfig=local.kubeconfig,
            prometheus_url=local.prometheus_url,
            local=local,
            kubectl_path=local.bin_dir / "kubectl",
            has_fake_gpu_nodes=True,
        )
    finally:
        local.detach()


@pytest.fixture(scope="session")
def kube(cluster: E2ECluster) -> KubeClients:
    return KubeClients(cluster.kubeconfig)


@pytest.fixture(scope="session")
def api_client(kube: KubeClients) -> client.ApiClient:
    return kube.api_client


@pytest.fixture(scope="session")
def core_v1(kube: KubeClients) -> client.CoreV1Api:
    return kube.core_v1()


@pytest.fixture(scope="session")
def apps_v1(kube: KubeClients) -> client.AppsV1Api:
    return kube.apps_v1()


@pytest.fixture(scope="session")
def custom_objects(kube: KubeClients) -> client.CustomObjectsApi:
    return kube.custom_objects()


@pytest.fixture(scope="session")
def rbac_v1(kube: KubeClients) -> client.RbacAuthorizationV1Api:
    return kube.rbac_v1()


@pytest.fixture(scope="session")
def kubectl(cluster: E2ECluster) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(
        *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(cluster.kubectl_path), f"--kubeconfig={cluster.kubeconfig}", *args]
        completed = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and completed.returncode != 0:
            pytest.fail(
                f"kubectl {' '.join(args)} failed ({completed.returncode}): {completed.stderr.strip()}"
            )
        return completed

    return run


@pytest.fixture(scope="session")
def prometheus(cluster: E2ECluster) -> PrometheusHandle:
    if cluster.prometheus_url is None:
        pytest.skip(f"no Prometheus in mode {cluster.mode} (set LLMSCALE_PROMETHEUS_URL)")
    return PrometheusHandle(cluster.prometheus_url)


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return wait_for


@pytest.fixture
def namespace(request: pytest.FixtureRequest, core_v1: client.CoreV1Api) -> Iterator[str]:
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"e2e-{slug}-{uuid.uuid4().hex[:5]}"
    core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))

    def default_service_account() -> bool:
        core_v1.read_namespaced_service_account("default", name)
        return True

    wait_for(default_service_account, 30, f"ServiceAccount {name}/default")
    yield name
    try:
        core_v1.delete_namespace(name, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise


_FIGURES: list[str] = []


@pytest.fixture
def report_figure() -> Callable[[str], None]:
    """Record one measured figure (one line) for the end of the run: pytest -q captures a passing
    test's output, and CI logs should still carry what the tier measured (cold starts, memory)."""
    return _FIGURES.append


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("measured figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)

"""The operator, started exactly as the chart starts it, with nothing but the chart's RBAC.

The chart is installed for one watched namespace; the operator then runs here as a
subprocess (pods never run containers on the local control plane) with:
- the command line and environment of the rendered operator Deployment (only the listen
  addresses are moved to 127.0.0.1 and Prometheus to the local one), and
- a kubeconfig holding a token of the chart's operator ServiceAccount (`kubectl create token`),
so every API call it makes is authorised by the chart's Role/ClusterRole and nothing else.
It must reconcile an LLMDeployment to Ready and finalise its deletion, with no "Forbidden" in
its log.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from test_chart_install import token_kubeconfig
from test_chart_support import CHART, CRD_NAME, adopt_crd_into_release, helm_for

pytestmark = pytest.mark.timeout(420)

GROUP, VERSION, PLURAL = "llmscale.dev", "v1alpha1", "llmdeployments"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chart_container(rendered: str, component: str) -> dict[str, Any]:
    """The container of the chart's <fullname>-<component> Deployment."""
    deployment = next(
        doc
        for doc in yaml.safe_load_all(rendered)
        if doc and doc["kind"] == "Deployment" and doc["metadata"]["name"].endswith(f"-{component}")
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def chart_operator_command(
    rendered: str, prometheus_url: str | None
) -> tuple[list[str], dict[str, str], int]:
    """argv (after `llmscale`), env and liveness port of the chart's operator container, localised."""
    container = chart_container(rendered, "operator")
    health_port = _free_port()
    args = []
    for arg in container["args"]:
        if arg.startswith("--liveness="):
            assert arg.startswith("--liveness=http://0.0.0.0:") and arg.endswith("/healthz"), arg
            arg = f"--liveness=http://127.0.0.1:{health_port}/healthz"  # loopback only in tests
        args.append(arg)
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    env["LLMSCALE_OPERATOR_METRICS_HOST"] = "127.0.0.1"
    env["LLMSCALE_OPERATOR_METRICS_PORT"] = str(_free_port())
    if prometheus_url:
        env["LLMSCALE_PROMETHEUS_URL"] = prometheus_url
    return args, env, health_port


def chart_gateway_command(rendered: str) -> tuple[list[str], int]:
    """argv (after `llmscale`) and port of the chart's gateway container, on 127.0.0.1."""
    port = _free_port()
    args = []
    for arg in chart_container(rendered, "gateway")["args"]:
        if arg.startswith("--host="):
            arg = "--host=127.0.0.1"
        elif arg.startswith("--port="):
            arg = f"--port={port}"
        args.append(arg)
    return args, port


class Process:
    """A `python -m llmscale ...` subprocess with its own log, stopped with SIGTERM."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as sink:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "llmscale", *args], env=env, stdout=sink, stderr=subprocess.STDOUT
            )

    def wait_http_ok(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                pytest.fail(f"{self.log.stem} exited with {self.popen.returncode}:\n{self.text()[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"{url} did not answer 200 within {timeout:.0f} s:\n{self.text()[-4000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _as(cluster: Any, kubectl: Kubectl, release: dict[str, str], component: str, tmp_path: Path) -> Path:
    """A kubeconfig holding a token of the chart's <component> ServiceAccount."""
    account = f"{release['release']}-llmscale-{component}"
    token = kubectl("create", "token", account, "-n", release["namespace"], "--duration=1h").stdout.strip()
    return token_kubeconfig(cluster.kubeconfig, token, tmp_path / f"{component}.kubeconfig")


@pytest.fixture
def chart_release(cluster: Any, kubectl: Kubectl, core_v1: client.CoreV1Api) -> Iterator[dict[str, str]]:
    suffix = uuid.uuid4().hex[:6]
    release, release_ns, watched = f"op-{suffix}", f"e2e-chart-op-{suffix}", f"e2e-chart-op-watched-{suffix}"
    for ns in (release_ns, watched):
        core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    helm = helm_for(cluster)
    flags = ["--namespace", release_ns, "--set", f"watchNamespaces={{{watched}}}"]
    adopt_crd_into_release(kubectl, release, release_ns)
    helm.run("install", release, str(CHART), *flags)
    rendered = helm.run("get", "manifest", release, "--namespace", release_ns).stdout
    kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    try:
        yield {"release": release, "namespace": release_ns, "watched": watched, "rendered": rendered}
    finally:
        helm.run("uninstall", release, "--namespace", release_ns, check=False)
        for ns in (release_ns, watched):
            try:
                core_v1.delete_namespace(ns, propagation_policy="Background")
            except ApiException as exc:
                if exc.status != 404:
                    raise


def _ready(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any] | None:
    obj: dict[str, Any] = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return obj if ready else None


# the chart turns gateway authentication on: the test creates this key in the release namespace
API_KEY = "chart-e2e-" + "0123456789abcdef" * 3
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def _ready_endpoints(port: int, model: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models", headers=AUTH)
    with urllib.request.urlopen(request, timeout=10) as response:
        models = json.load(response)["data"]
    return sum(m["llmscale"]["ready_endpoints"] for m in models if m["id"] == model or m["root"] == model)


def _complete(port: int, model: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/completions",
        data=json.dumps({"model": model, "prompt": "Hello", "max_tokens": 4}).encode(),
        headers={"Content-Type": "application/json", **AUTH},
    )
    # generous: the machine running the suite may be busy, and the emulator replica is a process
    with urllib.request.urlopen(request, timeout=120) as response:
        body: dict[str, Any] = json.load(response)
    return body


def test_operator_and_gateway_with_the_chart_service_accounts_serve_end_to_end(
    cluster: Any,
    kubectl: Kubectl,
    chart_release: dict[str, str],
    custom_objects: client.CustomObjectsApi,
    apps_v1: client.AppsV1Api,
    core_v1: client.CoreV1Api,
    wait_for: Callable[..., Any],
    tmp_path: Path,
) -> None:
    if cluster.mode != "local":
        pytest.skip("pod IPs answer only in local mode (the pod runner); kind runs the chart itself")
    watched = chart_release["watched"]
    args, chart_env, health_port = chart_operator_command(chart_release["rendered"], cluster.prometheus_url)
    assert args[0] == "operator" and f"--namespace={watched}" in args
    base_env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}  # never in-cluster
    operator_env = {
        **base_env,
        **chart_env,
        "KUBECONFIG": str(_as(cluster, kubectl, chart_release, "operator", tmp_path)),
    }
    gateway_args, gateway_port = chart_gateway_command(chart_release["rendered"])
    assert gateway_args[0] == "gateway" and f"--namespace={watched}" in gateway_args
    # the chart points the operator at the headless gateway Service; here the gateway is local
    assert chart_env["LLMSCALE_GATEWAY_METRICS_URLS"].endswith(
        f"-gateway-pods.{chart_release['namespace']}.svc:8080"
    )
    operator_env["LLMSCALE_GATEWAY_METRICS_URLS"] = f"http://127.0.0.1:{gateway_port}"
    gateway_env = {**base_env, "KUBECONFIG": str(_as(cluster, kubectl, chart_release, "gateway", tmp_path))}

    operator = Process(args, operator_env, tmp_path / "operator.log")
    gateway: Process | None = None
    try:
        operator.wait_http_ok(f"http://127.0.0.1:{health_port}/healthz")
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "LLMDeployment",
            "metadata": {"name": "chart-sa"},
            "spec": {
                "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": "chart-sa"},
                "engine": {"maxModelLen": 8192},
                "resources": {"gpu": {"product": "H100-80GB"}},
                "scaling": {"strategy": "Warm", "replicas": 1},
                "podAnnotations": {"llmscale.dev/startup-delay": "1s"},
                "podLabels": {"llmscale.dev/runner": "emulator"},
            },
        }
        custom_objects.create_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, body)
        obj = wait_for(lambda: _ready(custom_objects, watched, "chart-sa"), 120, "LLMDeployment Ready=True")
        assert obj["status"]["readyReplicas"] == 1
        deployment = apps_v1.read_namespaced_deployment("chart-sa", watched)
        assert deployment.metadata.owner_references[0].kind == "LLMDeployment"

        # the gateway, with only its own ServiceAccount (which reads the key Secrets of the release
        # namespace through the chart's Role), routes an authenticated request to the ready replica
        assert "--auth=api-key" in gateway_args
        core_v1.create_namespaced_secret(
            chart_release["namespace"],
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="e2e-key", labels={"llmscale.dev/gateway-api-key": "true"}),
                string_data={"token": API_KEY, "models": "chart-sa"},
            ),
        )
        gateway = Process(gateway_args, gateway_env, tmp_path / "gateway.log")
        gateway.wait_http_ok(f"http://127.0.0.1:{gateway_port}/health")
        # its watches (LLMDeployments, EndpointSlices) see the deployment and its ready replica
        wait_for(lambda: _ready_endpoints(gateway_port, "chart-sa") >= 1, 60, "gateway routes to chart-sa")
        try:
            answer = _complete(gateway_port, "chart-sa")
        except OSError as exc:
            pytest.fail(f"completion through the gateway failed: {exc!r}\n{gateway.text()[-3000:]}")
        assert answer["usage"]["completion_tokens"] > 0

        # deletion: the operator (with only PATCH on llmdeployments) removes its finalizer
        custom_objects.delete_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, "chart-sa")

        def gone() -> bool:
            try:
                custom_objects.get_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, "chart-sa")
            except ApiException as exc:
                return exc.status == 404
            return False

        wait_for(gone, 60, "LLMDeployment chart-sa deleted (finalizer released)")
    finally:
        operator.stop()
        if gateway is not None:
            gateway.stop()
    logs = operator.text() + (gateway.text() if gateway is not None else "")
    assert "Traceback" not in logs, logs[-4000:]
    denied = [line for line in logs.splitlines() if "forbidden" in line.lower() or " 403" in line]
    # the scaling loop lists only in the operator's --namespace list, so a namespaced Role suffices
    assert denied == [], "the chart's RBAC denied the operator or the gateway:\n" + "\n".join(denied[:20])

"""The operator on the real local control plane: create -> Ready, rollout, drift, /scale, restart, GC.

The operator runs as a subprocess (`python -m llmscale operator --namespace NS`) with the
cluster's KUBECONFIG, one per test so tests never share a watcher. Pods are KWOK pods: they
become Ready after the simulated cold start (annotation llmscale.dev/startup-delay).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llmscale.api import defaults

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "llmdeployments.llmscale.dev.yaml"
GROUP, VERSION, PLURAL = "llmscale.dev", "v1alpha1", "llmdeployments"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OperatorProcess:
    """`llmscale operator` for one namespace, started and stopped by the test."""

    def __init__(self, kubeconfig: Path, namespace: str, log_path: Path) -> None:
        self.kubeconfig, self.namespace, self.log_path = kubeconfig, namespace, log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        port = _free_port()
        argv = [
            sys.executable,
            "-m",
            "llmscale",
            "operator",
            "--namespace",
            self.namespace,
            "--liveness",
            f"http://127.0.0.1:{port}/healthz",
            "--metrics-port",
            "0",
        ]
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"operator exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"operator liveness endpoint did not answer within 60 s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="session")
def crd_installed(kubectl: Callable[..., Any]) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=llmscale-e2e", "-f", str(CRD))
    kubectl("wait", "--for=condition=Established", "crd/llmdeployments.llmscale.dev", "--timeout=60s")


@pytest.fixture
def operator(cluster: Any, namespace: str, tmp_path: Path, crd_installed: None) -> Iterator[OperatorProcess]:
    process = OperatorProcess(cluster.kubeconfig, namespace, tmp_path / "operator.log")
    process.start()
    yield process
    process.stop()
    errors = [line for line in process.log_text().splitlines() if "Traceback" in line]
    assert not errors, f"operator log has tracebacks:\n{process.log_tail(80)}"


def manifest(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": name},
        "engine": {"maxModelLen": 8192},
        "resources": {"gpu": {"product": "H100-80GB"}},
        "scaling": {"strategy": "Warm", "replicas": 1},
        "podAnnotations": {"llmscale.dev/startup-delay": "1s"},
    }
    body.update(spec)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": body,
    }


def get_llmdep(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)  # type: ignore[no-any-return]


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond["type"] == type_:
            return cond  # type: ignore[no-any-return]
    return {}


def read_or_none(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def ready_pods(core: client.CoreV1Api, namespace: str, name: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"llmscale.dev/deployment={name}").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or ()))
    ]


def test_operator_create_ready_rollout_drift_scale_delete(
    operator: OperatorProcess,
    namespace: str,
    custom_objects: client.CustomObjectsApi,
    apps_v1: client.AppsV1Api,
    core_v1: client.CoreV1Api,
    kubectl: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest("llama", scaling={"strategy": "Warm", "replicas": 2})
    )
    deployment = wait_for(
        lambda: read_or_none(lambda: apps_v1.read_namespaced_deployment("llama", namespace)),
        30,
        "Deployment llama",
    )
    pod_spec = deployment.spec.template.spec
    (container,) = pod_spec.containers
    assert container.command == ["vllm", "serve"]
    assert container.args[:9] == [
        "meta-llama/Llama-3.1-8B-Instruct",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--served-model-name",
        "llama",
        "--tensor-parallel-size",
        "1",
    ]
    assert "--max-model-len" in container.args and "8192" in container.args
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert container.startup_probe.http_get.path == "/health"
    assert container.readiness_probe.http_get.path == "/health"
    required = pod_spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    term = required.node_selector_terms[0]
    assert term.match_expressions[0].key == "nvidia.com/gpu.product"
    assert term.match_expressions[0].values == ["NVIDIA-H100-80GB-HBM3"]
    assert any(t.key == "nvidia.com/gpu" and t.operator == "Exists" for t in pod_spec.tolerations)
    assert any(v.name == "dshm" and v.empty_dir.medium == "Memory" for v in pod_spec.volumes)
    assert deployment.metadata.owner_references[0].kind == "LLMDeployment"
    assert deployment.metadata.labels["llmscale.dev/deployment"] == "llama"

    pods = wait_for(
        lambda: len(ready_pods(core_v1, namespace, "llama")) == 2 and ready_pods(core_v1, namespace, "llama"),
        90,
        "2 ready pods",
    )
    assert all(p.spec.node_name.startswith("gpu-h100-") for p in pods)
    assert all(p.metadata.annotations["prometheus.io/scrape"] == "true" for p in pods)

    def ready_status() -> dict[str, Any] | None:
        obj = get_llmdep(custom_objects, namespace, "llama")
        return obj if condition(obj, "Ready").get("status") == "True" else None

    obj = wait_for(ready_status, 60, "LLMDeployment Ready=True")
    status = obj["status"]
    assert (status["readyReplicas"], status["desiredReplicas"], status["strategy"]) == (2, 2, "Warm")
    assert status["endpoint"] == f"http://llama.{namespace}.svc:8000/v1"
    assert condition(obj, "ModelFits")["status"] == "True"
    assert status["plan"]["tensorParallelSize"] == 1
    table = kubectl("get", "llmdep", "-n", namespace).stdout
    assert "MODEL" in table and "H100-80GB" in table and "Warm" in table

    # spec change -> rollout of a new ReplicaSet, status follows the new generation
    custom_objects.patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, "llama", {"spec": {"engine": {"maxModelLen": 4096}}}
    )
    wait_for(
        lambda: (
            "4096"
            in apps_v1.read_namespaced_deployment("llama", namespace).spec.template.spec.containers[0].args
        ),
        30,
        "Deployment args carry the new maxModelLen",
    )

    def rolled_out() -> bool:
        obj = get_llmdep(custom_objects, namespace, "llama")
        return (
            obj["status"].get("observedGeneration") == 2 and condition(obj, "Ready").get("status") == "True"
        )

    wait_for(rolled_out, 90, "generation 2 rolled out and Ready")

    # drift: a managed field edited by hand is reverted; a deleted child is recreated
    apps_v1.patch_namespaced_deployment(
        "llama",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "image": "evil:1"}]}}}},
    )
    wait_for(
        lambda: (
            apps_v1.read_namespaced_deployment("llama", namespace).spec.template.spec.containers[0].image
            == defaults.ENGINE_IMAGE
        ),
        30,
        "image drift reverted",
    )
    core_v1.delete_namespaced_service("llama", namespace)
    wait_for(
        lambda: read_or_none(lambda: core_v1.read_namespaced_service("llama", namespace)),
        30,
        "Service recreated",
    )

    # /scale subresource
    kubectl("scale", "llmdep/llama", "--replicas=3", "-n", namespace)
    wait_for(
        lambda: apps_v1.read_namespaced_deployment("llama", namespace).spec.replicas == 3, 30, "3 replicas"
    )
    policy = client.PolicyV1Api(apps_v1.api_client)
    wait_for(
        lambda: read_or_none(lambda: policy.read_namespaced_pod_disruption_budget("llama", namespace)),
        30,
        "PDB",
    )
    scale = kubectl(
        "get", "--raw", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/llama/scale"
    ).stdout
    assert '"replicas":3' in scale.replace(" ", "")

    reasons = {
        e.reason for e in core_v1.list_namespaced_event(namespace).items if e.involved_object.name == "llama"
    }
    assert {"Created", "Updated", "ReplicasReady"} <= reasons

    # deletion: the garbage collector removes every child (no finalizer holds the parent)
    custom_objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "llama")
    wait_for(
        lambda: (
            read_or_none(lambda: apps_v1.read_namespaced_deployment("llama", namespace)) is None
            and read_or_none(lambda: core_v1.read_namespaced_service("llama", namespace)) is None
            and read_or_none(lambda: policy.read_namespaced_pod_disruption_budget("llama", namespace)) is None
        ),
        60,
        "children garbage-collected",
    )


def test_operator_restart_resumes_without_duplicates(
    operator: OperatorProcess,
    namespace: str,
    custom_objects: client.CustomObjectsApi,
    apps_v1: client.AppsV1Api,
    core_v1: client.CoreV1Api,
    wait_for: Callable[..., Any],
) -> None:
    names = ["a", "b", "c"]
    for name in names:
        custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest(name))

    def all_ready() -> bool:
        return all(
            condition(get_llmdep(custom_objects, namespace, n), "Ready").get("status") == "True"
            for n in names
        )

    wait_for(all_ready, 90, "3 LLMDeployments Ready")
    before = {
        d.metadata.name: (d.metadata.uid, d.metadata.generation)
        for d in apps_v1.list_namespaced_deployment(namespace).items
    }
    operator.stop()
    # created while the operator is down: picked up on start
    custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest("d"))
    # drifted while the operator is down: reverted on start
    apps_v1.patch_namespaced_deployment(
        "a",
        namespace,
        {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "image": "evil:1"}]}}}},
    )
    drifted_generation = apps_v1.read_namespaced_deployment("a", namespace).metadata.generation
    # deleted while the operator is down: recreated on start
    core_v1.delete_namespaced_service("b", namespace)
    operator.start()
    wait_for(
        lambda: condition(get_llmdep(custom_objects, namespace, "d"), "Ready").get("status") == "True",
        90,
        "d reconciled after the restart",
    )
    wait_for(
        lambda: (
            apps_v1.read_namespaced_deployment("a", namespace).spec.template.spec.containers[0].image
            == defaults.ENGINE_IMAGE
        ),
        60,
        "drift made while the operator was down reverted",
    )
    after = {
        d.metadata.name: (d.metadata.uid, d.metadata.generation)
        for d in apps_v1.list_namespaced_deployment(namespace).items
    }
    assert set(after) == {"a", "b", "c", "d"}
    # same objects; b and c untouched (no spurious rollout), a back to its template
    assert {n: after[n] for n in ("b", "c")} == {n: before[n] for n in ("b", "c")}
    assert after["a"][0] == before["a"][0] and after["a"][1] == drifted_generation + 1
    services = core_v1.list_namespaced_service(namespace).items
    assert sorted(s.metadata.name for s in services) == ["a", "b", "c", "d"]
    wait_for(all_ready, 90, "Ready again after the restart (a rolled back to its template)")


def test_operator_refuses_a_model_that_does_not_fit(
    operator: OperatorProcess,
    namespace: str,
    custom_objects: client.CustomObjectsApi,
    apps_v1: client.AppsV1Api,
    core_v1: client.CoreV1Api,
    wait_for: Callable[..., Any],
) -> None:
    big = manifest(
        "big",
        model={"name": "meta-llama/Llama-3.1-405B-Instruct"},
        resources={"gpu": {"product": "L4", "count": 1}},
        engine={"maxModelLen": 8192},
    )
    custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, big)

    def held() -> dict[str, Any] | None:
        obj = get_llmdep(custom_objects, namespace, "big")
        return obj if condition(obj, "Ready").get("reason") == "ModelDoesNotFit" else None

    obj = wait_for(held, 30, "Ready=False ModelDoesNotFit")
    assert condition(obj, "Ready")["status"] == "False"
    assert condition(obj, "ModelFits")["status"] == "False"
    assert "GiB" in condition(obj, "ModelFits")["message"]
    assert obj["status"]["plan"]["fits"] is False
    assert read_or_none(lambda: apps_v1.read_namespaced_deployment("big", namespace)) is None
    warnings = [e for e in core_v1.list_namespaced_event(namespace).items if e.reason == "ModelDoesNotFit"]
    assert warnings and warnings[0].type == "Warning"

    # an unknown model without an architecture: served, fit Unknown
    custom_objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        manifest("mystery", model={"name": "example/in-house-model"}, engine={}),
    )
    wait_for(
        lambda: (
            condition(get_llmdep(custom_objects, namespace, "mystery"), "ModelFits").get("status")
            == "Unknown"
            and read_or_none(lambda: apps_v1.read_namespaced_deployment("mystery", namespace)) is not None
        ),
        30,
        "unknown model deployed with ModelFits=Unknown",
    )

    # fixing the spec (fp8 on 8 x H100) lets it through
    fixed = {"resources": {"gpu": {"product": "H100-80GB", "count": 8}}, "engine": {"quantization": "fp8"}}
    custom_objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "big", {"spec": fixed})
    deployment = wait_for(
        lambda: read_or_none(lambda: apps_v1.read_namespaced_deployment("big", namespace)),
        30,
        "Deployment big",
    )
    assert deployment.spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"] == "8"
    wait_for(
        lambda: condition(get_llmdep(custom_objects, namespace, "big"), "ModelFits").get("status") == "True",
        30,
        "ModelFits=True",
    )


def test_operator_reports_unschedulable_pods(
    operator: OperatorProcess,
    namespace: str,
    custom_objects: client.CustomObjectsApi,
    wait_for: Callable[..., Any],
) -> None:
    # Fits on paper (8 x L4), but the only L4 node has 4 GPUs: the scheduler's reason surfaces.
    wide = manifest("wide", resources={"gpu": {"product": "L4", "count": 8}}, engine={"maxModelLen": 4096})
    custom_objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, wide)

    def unschedulable() -> dict[str, Any] | None:
        ready = condition(get_llmdep(custom_objects, namespace, "wide"), "Ready")
        return ready if ready.get("reason") == "Unschedulable" else None

    ready = wait_for(unschedulable, 60, "Ready=False Unschedulable")
    assert ready["status"] == "False"
    assert "nvidia.com/gpu" in ready["message"]

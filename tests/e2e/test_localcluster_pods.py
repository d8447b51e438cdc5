"""Acceptance: pods answer on their loopback IP through the pod runner, Prometheus scrapes them,
the start-up delay annotation is honoured, and Services get EndpointSlices."""

from __future__ import annotations

import datetime
import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

STARTUP_DELAY_SECONDS = 4


def echo_deployment(name: str, replicas: int, startup_delay: str = "1s") -> client.V1Deployment:
    labels = {"app": name, "llmscale.dev/runner": "http-echo", "llmscale.dev/deployment": name}
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8000",
        "prometheus.io/path": "/metrics",
        "llmscale.dev/startup-delay": startup_delay,
    }
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels, annotations=annotations),
                spec=client.V1PodSpec(
                    termination_grace_period_seconds=5,
                    containers=[
                        client.V1Container(
                            name="echo",
                            image="fake",
                            ports=[client.V1ContainerPort(name="http", container_port=8000)],
                        )
                    ],
                ),
            ),
        ),
    )


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as response:
        return json.load(response)


def _ready_pods(core_v1: client.CoreV1Api, namespace: str, app: str) -> list[Any]:
    pods = core_v1.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


@pytest.fixture
def local_only(cluster: Any) -> None:
    if cluster.local is None:
        pytest.skip("pod IPs answer only in local mode (the pod runner); kind runs real containers")


def test_pod_ip_answers_http_and_prometheus_scrapes_it_with_namespace_and_pod_labels(
    local_only: None,
    namespace: str,
    apps_v1: client.AppsV1Api,
    core_v1: client.CoreV1Api,
    prometheus: Any,
    wait_for: Callable[..., Any],
) -> None:
    apps_v1.create_namespaced_deployment(namespace, echo_deployment("echo", 2))
    pods = wait_for(
        lambda: len(_ready_pods(core_v1, namespace, "echo")) == 2 and _ready_pods(core_v1, namespace, "echo"),
        30,
        "2 ready echo pods",
    )
    for pod in pods:
        answer = wait_for(
            lambda ip=pod.status.pod_ip: _get_json(f"http://{ip}:8000/"), 15, f"HTTP on {pod.status.pod_ip}"
        )
        assert answer == {
            "pod": pod.metadata.name,
            "namespace": namespace,
            "ip": pod.status.pod_ip,
            "path": "/",
        }
    series = prometheus.wait_for_series(f'llmscale_echo_up{{namespace="{namespace}"}}', timeout=30)
    wait_for(
        lambda: len(prometheus.query(f'llmscale_echo_up{{namespace="{namespace}"}}')) == 2,
        30,
        "both pods scraped",
    )
    series = prometheus.query(f'llmscale_echo_up{{namespace="{namespace}"}}')
    assert {s["metric"]["pod"] for s in series} == {p.metadata.name for p in pods}
    sample = series[0]["metric"]
    assert sample["job"] == "kubernetes-pods"
    assert sample["llmdeployment"] == "echo"
    assert sample["node"] in {
        "gpu-h100-0",
        "gpu-h100-1",
        "gpu-h100-2",
        "gpu-h100-3",
        "gpu-a100-0",
        "gpu-l4-0",
        "cpu-0",
    }


def test_startup_delay_annotation_holds_readiness_while_the_process_already_serves(
    local_only: None,
    namespace: str,
    apps_v1: client.AppsV1Api,
    core_v1: client.CoreV1Api,
    wait_for: Callable[..., Any],
) -> None:
    apps_v1.create_namespaced_deployment(namespace, echo_deployment("slow", 1, f"{STARTUP_DELAY_SECONDS}s"))

    def pod_with_ip() -> Any:
        pods = core_v1.list_namespaced_pod(namespace, label_selector="app=slow").items
        return pods[0] if pods and pods[0].status.pod_ip else None

    pod = wait_for(pod_with_ip, 20, "the slow pod to get an IP")
    # the runner starts the process at once: it answers during the simulated cold start
    wait_for(lambda: _get_json(f"http://{pod.status.pod_ip}:8000/"), 15, "the process to answer before Ready")
    assert not _ready_pods(core_v1, namespace, "slow"), "Ready before the start-up delay elapsed"
    ready = wait_for(lambda: _ready_pods(core_v1, namespace, "slow"), 30, "the slow pod to become Ready")[0]
    ready_at = next(c.last_transition_time for c in ready.status.conditions if c.type == "Ready")
    created_at: datetime.datetime = ready.metadata.creation_timestamp
    assert (ready_at - created_at).total_seconds() >= STARTUP_DELAY_SECONDS - 1  # RFC3339: whole seconds


def test_deleting_a_pod_stops_its_process_and_a_service_gets_endpoint_slices(
    local_only: None,
    cluster: Any,
    namespace: str,
    apps_v1: client.AppsV1Api,
    core_v1: client.CoreV1Api,
    api_client: client.ApiClient,
    wait_for: Callable[..., Any],
) -> None:
    apps_v1.create_namespaced_deployment(namespace, echo_deployment("svc", 2))
    core_v1.create_namespaced_service(
        namespace,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="svc"),
            spec=client.V1ServiceSpec(
                selector={"app": "svc"},
                ports=[client.V1ServicePort(name="http", port=80, target_port="http")],
            ),
        ),
    )
    discovery = client.DiscoveryV1Api(api_client)

    def ready_addresses() -> set[str]:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=svc"
        ).items
        return {
            e.addresses[0]
            for s in slices
            for e in s.endpoints or []
            if e.conditions.ready and s.ports and s.ports[0].port == 8000
        }

    pods = wait_for(
        lambda: len(_ready_pods(core_v1, namespace, "svc")) == 2 and _ready_pods(core_v1, namespace, "svc"),
        30,
        "2 ready pods",
    )
    wait_for(
        lambda: ready_addresses() == {p.status.pod_ip for p in pods},
        20,
        "an EndpointSlice listing both pod IPs",
    )

    victim = pods[0]
    url = f"http://{victim.status.pod_ip}:8000/"
    wait_for(lambda: _get_json(url), 15, "the victim's process to answer")
    core_v1.delete_namespaced_pod(victim.metadata.name, namespace)

    def stopped() -> bool:
        try:
            _get_json(url)
        except OSError:
            return True
        return False

    wait_for(stopped, 15, "the pod runner to stop the deleted pod's process")
    log_path = cluster.local.pods_dir / f"{namespace}_{victim.metadata.name}.log"
    # it exited on SIGTERM, not SIGKILL: its last line comes after its socket closed, so wait for it
    wait_for(lambda: "http-echo stopped" in log_path.read_text(), 10, "a clean exit in the pod log")
    wait_for(lambda: victim.status.pod_ip not in ready_addresses(), 20, "the deleted pod to leave the slice")

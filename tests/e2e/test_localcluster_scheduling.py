"""Acceptance: GPU pods land on GPU nodes and get Ready; impossible requests stay Pending."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

GPU_TOLERATION = client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")


def gpu_deployment(
    name: str, replicas: int, gpus: int, product: str | None = None, tolerate: bool = True
) -> client.V1Deployment:
    affinity = None
    if product is not None:
        affinity = client.V1Affinity(
            node_affinity=client.V1NodeAffinity(
                required_during_scheduling_ignored_during_execution=client.V1NodeSelector(
                    node_selector_terms=[
                        client.V1NodeSelectorTerm(
                            match_expressions=[
                                client.V1NodeSelectorRequirement(
                                    key="nvidia.com/gpu.product", operator="In", values=[product]
                                )
                            ]
                        )
                    ]
                )
            )
        )
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": name}),
                spec=client.V1PodSpec(
                    affinity=affinity,
                    tolerations=[GPU_TOLERATION] if tolerate else None,
                    containers=[
                        client.V1Container(
                            name="vllm",
                            image="vllm/vllm-openai:fake",
                            resources=client.V1ResourceRequirements(limits={"nvidia.com/gpu": str(gpus)}),
                        )
                    ],
                ),
            ),
        ),
    )


def test_gpu_deployment_is_scheduled_onto_gpu_nodes_and_becomes_ready(
    cluster: Any,
    namespace: str,
    apps_v1: client.AppsV1Api,
    core_v1: client.CoreV1Api,
    wait_for: Callable[..., Any],
) -> None:
    if not cluster.has_fake_gpu_nodes:
        pytest.skip("needs the local cluster's fake GPU nodes")
    apps_v1.create_namespaced_deployment(namespace, gpu_deployment("h100", 3, 1, "NVIDIA-H100-80GB-HBM3"))

    def ready_replicas() -> bool:
        status = apps_v1.read_namespaced_deployment("h100", namespace).status
        return status.ready_replicas == 3

    wait_for(ready_replicas, 60, "3 ready replicas of deployment h100")
    pods = core_v1.list_namespaced_pod(namespace, label_selector="app=h100").items
    assert {p.status.phase for p in pods} == {"Running"}
    assert all(p.spec.node_name.startswith("gpu-h100-") for p in pods)
    for pod in pods:
        assert pod.status.pod_ip.startswith("127.")


def test_a_pod_wanting_more_gpus_than_any_node_has_stays_pending_with_the_reason(
    cluster: Any,
    namespace: str,
    apps_v1: client.AppsV1Api,
    core_v1: client.CoreV1Api,
    wait_for: Callable[..., Any],
) -> None:
    if not cluster.has_fake_gpu_nodes:
        pytest.skip("needs the local cluster's fake GPU nodes")
    apps_v1.create_namespaced_deployment(namespace, gpu_deployment("huge", 1, 16))

    def unschedulable_condition() -> Any:
        for pod in core_v1.list_namespaced_pod(namespace, label_selector="app=huge").items:
            for condition in pod.status.conditions or []:
                if condition.type == "PodScheduled" and condition.reason == "Unschedulable":
                    return pod, condition
        return None

    pod, condition = wait_for(unschedulable_condition, 30, "the scheduler to mark the pod Unschedulable")
    assert pod.status.phase == "Pending"
    assert "Insufficient nvidia.com/gpu" in condition.message


def test_a_plain_gpu_deployment_without_tolerations_schedules_as_on_managed_clusters(
    cluster: Any,
    namespace: str,
    apps_v1: client.AppsV1Api,
    core_v1: client.CoreV1Api,
    wait_for: Callable[..., Any],
) -> None:
    """ExtendedResourceToleration (on in GKE, EKS, AKS) adds the nvidia.com/gpu toleration to a
    pod that requests the resource; without it such a pod stays Pending ("untolerated taint")."""
    if not cluster.has_fake_gpu_nodes:
        pytest.skip("needs the local cluster's fake GPU nodes")
    apps_v1.create_namespaced_deployment(namespace, gpu_deployment("plain", 1, 1, tolerate=False))

    def running_pod() -> Any:
        for pod in core_v1.list_namespaced_pod(namespace, label_selector="app=plain").items:
            if pod.status.phase == "Running":
                return pod
        return None

    pod = wait_for(running_pod, 60, "the plain GPU pod to run")
    assert pod.spec.node_name.startswith("gpu-")
    added = [t for t in pod.spec.tolerations or [] if t.key == "nvidia.com/gpu"]
    assert added and added[0].operator == "Exists" and added[0].effect == "NoSchedule"

"""Acceptance: garbage collection, RBAC and admission behave as on a real cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def _gone(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as exc:
        return exc.status == 404
    return False


def test_deleting_an_owner_garbage_collects_its_dependants(
    namespace: str, core_v1: client.CoreV1Api, wait_for: Callable[..., Any]
) -> None:
    owner = core_v1.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    reference = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid, block_owner_deletion=True
    )
    core_v1.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dependant", owner_references=[reference])),
    )
    core_v1.delete_namespaced_config_map("owner", namespace)
    wait_for(
        lambda: _gone(lambda: core_v1.read_namespaced_config_map("dependant", namespace)),
        30,
        "the garbage collector to delete the dependant ConfigMap",
    )


def test_deleting_a_deployment_removes_its_replicasets_and_pods(
    namespace: str, apps_v1: client.AppsV1Api, core_v1: client.CoreV1Api, wait_for: Callable[..., Any]
) -> None:
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="fake")]),
            ),
        ),
    )
    apps_v1.create_namespaced_deployment(namespace, deployment)
    wait_for(
        lambda: len(core_v1.list_namespaced_pod(namespace, label_selector="app=web").items) == 2,
        30,
        "the ReplicaSet controller to create 2 pods",
    )
    apps_v1.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    wait_for(
        lambda: (
            not apps_v1.list_namespaced_replica_set(namespace).items
            and not core_v1.list_namespaced_pod(namespace, label_selector="app=web").items
        ),
        30,
        "ReplicaSet and pods to be garbage collected",
    )


def test_rbac_denies_an_unprivileged_service_account(
    cluster: Any, namespace: str, core_v1: client.CoreV1Api, api_client: client.ApiClient
) -> None:
    core_v1.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    token = core_v1.create_namespaced_service_account_token(
        "nobody", namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
    ).status.token
    configuration = client.Configuration()
    configuration.host = api_client.configuration.host
    configuration.ssl_ca_cert = api_client.configuration.ssl_ca_cert
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(configuration) as as_nobody:
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(as_nobody).list_namespaced_secret(namespace)
        assert denied.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in str(denied.value.body)
        # authentication itself worked: the identity is known, only the permission is missing
        review = client.AuthorizationV1Api(as_nobody).create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(
                        namespace=namespace, verb="list", resource="secrets"
                    )
                )
            )
        )
        assert review.status.allowed is False


def test_validation_and_admission_errors_reach_the_client(
    namespace: str, core_v1: client.CoreV1Api, wait_for: Callable[..., Any]
) -> None:
    bad_pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="Bad_Name"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="fake")]),
    )
    with pytest.raises(ApiException) as invalid:
        core_v1.create_namespaced_pod(namespace, bad_pod)
    assert invalid.value.status == 422
    assert "Bad_Name" in str(invalid.value.body)

    # the ResourceQuota admission plugin (on by default) refuses a pod over quota
    core_v1.create_namespaced_resource_quota(
        namespace,
        client.V1ResourceQuota(
            metadata=client.V1ObjectMeta(name="no-pods"), spec=client.V1ResourceQuotaSpec(hard={"pods": "0"})
        ),
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="over-quota"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="fake")]),
    )

    def quota_enforced() -> bool:
        # the quota controller must first compute status.used before admission enforces it
        quota = core_v1.read_namespaced_resource_quota("no-pods", namespace)
        return quota.status is not None and quota.status.hard is not None

    wait_for(quota_enforced, 30, "the ResourceQuota status to be computed")
    with pytest.raises(ApiException) as forbidden:
        core_v1.create_namespaced_pod(namespace, pod)
    assert forbidden.value.status == 403
    assert "exceeded quota: no-pods" in str(forbidden.value.body)

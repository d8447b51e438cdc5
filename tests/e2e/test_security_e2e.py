"""Secure by default on the real local control plane.

- A namespace that enforces the "restricted" Pod Security Standard refuses an ordinary pod (so
  the local API server really enforces PodSecurity admission) and admits the vLLM pods the
  operator builds: the LLMDeployment becomes Ready there.
- The per-LLMDeployment NetworkPolicy is created and accepted by the API server. The local
  cluster has no network plugin, so nothing enforces it here: only its rendering and validity
  are tested (docs/security.md).
- Through an authenticating gateway: no key -> 401 and the deployment stays at zero; a key for
  another model -> 403; a valid key wakes it and gets an answer.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llmscale_tools.demo.stack import Stack, emulated_llmdeployment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

GROUP, VERSION, PLURAL = "llmscale.dev", "v1alpha1", "llmdeployments"
TOKEN = "e2e-" + "a1b2c3d4" * 6
OTHER_TOKEN = "e2e-" + "f9e8d7c6" * 6


def enforce_restricted(core_v1: client.CoreV1Api, namespace: str) -> None:
    labels = {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    }
    core_v1.patch_namespace(namespace, {"metadata": {"labels": labels}})


def assert_restricted_is_enforced(core_v1: client.CoreV1Api, namespace: str) -> None:
    """A pod with no securityContext at all must be refused by PodSecurity admission."""
    plain = client.V1Pod(
        metadata=client.V1ObjectMeta(name="plain"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:1.36")]),
    )
    with pytest.raises(ApiException) as refused:
        core_v1.create_namespaced_pod(namespace, plain)
    assert refused.value.status == 403
    message = json.loads(refused.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message, message


@pytest.fixture
def stack(cluster: Any, namespace: str, core_v1: client.CoreV1Api) -> Iterator[Stack]:
    if cluster.local is None:
        pytest.skip("needs the local cluster's pod runner (emulated vLLM pods)")
    enforce_restricted(core_v1, namespace)
    stack = Stack.on_local_cluster(cluster.local, namespace)
    try:
        stack.start_operator(interval_seconds=1.0)
        yield stack
    finally:
        stack.stop_all()


def _conditions(custom_objects: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    body = custom_objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return {c["type"]: c for c in (body.get("status") or {}).get("conditions") or ()}


def _replicas(apps_v1: client.AppsV1Api, namespace: str, name: str) -> int | None:
    try:
        return int(apps_v1.read_namespaced_deployment(name, namespace).spec.replicas or 0)
    except ApiException:
        return None


def test_restricted_namespace_admits_the_vllm_pods_and_the_network_policy_is_valid(
    stack: Stack,
    namespace: str,
    core_v1: client.CoreV1Api,
    custom_objects: client.CustomObjectsApi,
    api_client: client.ApiClient,
    wait_for: Callable[..., Any],
) -> None:
    assert_restricted_is_enforced(core_v1, namespace)
    name = "locked-down"
    custom_objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        emulated_llmdeployment(name, namespace, strategy="Warm", replicas=1),
    )
    wait_for(
        lambda: _conditions(custom_objects, namespace, name).get("Ready", {}).get("status") == "True",
        120,
        "Ready=True in a restricted namespace",
    )
    (pod,) = core_v1.list_namespaced_pod(namespace, label_selector=f"llmscale.dev/deployment={name}").items
    assert pod.spec.security_context.run_as_non_root is True
    assert pod.spec.automount_service_account_token is False
    assert pod.spec.containers[0].security_context.read_only_root_filesystem is True
    requests = pod.spec.containers[0].resources.requests
    assert requests["cpu"] == "3" and requests["memory"] == "22Gi"  # docs/api.md: 8B on one L4
    # the API server accepted the NetworkPolicy as built; nothing here enforces it
    policy = client.NetworkingV1Api(api_client).read_namespaced_network_policy(name, namespace)
    assert policy.spec.policy_types == ["Ingress"]
    assert policy.spec.pod_selector.match_labels == {
        "app.kubernetes.io/name": "vllm",
        "llmscale.dev/deployment": name,
    }
    first = policy.spec.ingress[0]
    assert [p.port for p in first.ports] == [8000]
    assert {p.namespace_selector.match_labels["kubernetes.io/metadata.name"] for p in first._from} == {
        "llmscale-system",
        "monitoring",
    }
    assert policy.metadata.owner_references[0].kind == "LLMDeployment"


def _key_secret(name: str, token: str, models: str) -> client.V1Secret:
    return client.V1Secret(
        metadata=client.V1ObjectMeta(name=name, labels={"llmscale.dev/gateway-api-key": "true"}),
        data={
            k: base64.b64encode(v.encode()).decode() for k, v in {"token": token, "models": models}.items()
        },
    )


async def _complete(url: str, model: str, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"model": model, "prompt": "hello", "max_tokens": 4}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session,
        session.post(f"{url}/v1/completions", json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


def test_gateway_keys_401_never_wakes_403_other_model_valid_key_wakes_and_answers(
    stack: Stack,
    namespace: str,
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
    custom_objects: client.CustomObjectsApi,
    wait_for: Callable[..., Any],
) -> None:
    core_v1.create_namespaced_secret(namespace, _key_secret("zero-key", TOKEN, "zero"))
    core_v1.create_namespaced_secret(namespace, _key_secret("other-key", OTHER_TOKEN, "another-model"))
    stack.start_gateway(hold_timeout_seconds=90.0, api_key_namespace=namespace)
    name = "zero"
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, emulated_llmdeployment(name, namespace, strategy="ScaleToZero")
    )
    wait_for(lambda: _replicas(apps_v1, namespace, name) == 0, 60, "the Deployment at zero replicas")

    for token in (None, "not-a-key-" + "x" * 30):
        status, body = asyncio.run(_complete(stack.gateway_url, name, token))
        assert status == 401 and body["error"]["type"] == "invalid_request_error", body
    status, body = asyncio.run(_complete(stack.gateway_url, name, OTHER_TOKEN))
    assert status == 403 and body["error"]["code"] == "model_not_permitted", body
    # refused requests never reached the routing table: still zero, no activation asked for
    time.sleep(3.0)
    assert _replicas(apps_v1, namespace, name) == 0
    annotations = (
        custom_objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)["metadata"].get(
            "annotations"
        )
        or {}
    )
    assert "llmscale.dev/activation-requested-at" not in annotations

    status, body = asyncio.run(_complete(stack.gateway_url, name, TOKEN))
    assert status == 200, body
    assert body["choices"], body
    assert (_replicas(apps_v1, namespace, name) or 0) >= 1
    metrics = stack_metrics(stack)
    assert 'llmscale_gateway_auth_rejections_total{reason="missing_key"} 1.0' in metrics
    assert 'llmscale_gateway_auth_rejections_total{reason="invalid_key"} 1.0' in metrics
    assert 'llmscale_gateway_auth_rejections_total{reason="forbidden_model"} 1.0' in metrics
    assert 'llmscale_gateway_api_keys{state="valid"} 2.0' in metrics


def test_notes_warn_only_when_authentication_is_off(cluster: Any, namespace: str) -> None:
    """NOTES.txt (printed by `helm install`) warns when gateway.auth.enabled=false."""
    from test_chart_support import CHART, helm_for

    helm = helm_for(cluster)

    def notes(*flags: str) -> str:
        # crds.enabled=false: the session's CRD belongs to no release and would be refused
        args = (
            "install", "notes-check", str(CHART), "--namespace", namespace, "--dry-run=client",
            "--set", "crds.enabled=false", *flags,
        )  # fmt: skip
        return str(helm.run(*args).stdout)

    assert "WARNING: gateway.auth.enabled=false" in notes("--set", "gateway.auth.enabled=false")
    default = notes()
    assert "WARNING" not in default
    assert "llmscale.dev/gateway-api-key=true" in default and "Authorization: Bearer" in default


def stack_metrics(stack: Stack) -> str:
    import urllib.request

    with urllib.request.urlopen(f"{stack.gateway_url}/metrics", timeout=5) as response:
        return str(response.read().decode())

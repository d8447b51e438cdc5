"""The few Kubernetes API calls `cluster up` makes (nodes, default ServiceAccount)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from llmscale.errors import EnvironmentSetupError


def api_client(kubeconfig: Path) -> Any:
    new_client: Any = config.new_client_from_config  # untyped in the kubernetes package
    return new_client(config_file=str(kubeconfig))


def create_nodes(kubeconfig: Path, manifests: list[dict[str, Any]]) -> None:
    """Create the fake nodes; an existing node of the same name is replaced."""
    with api_client(kubeconfig) as api:
        core: Any = client.CoreV1Api(api)  # Any: it takes plain dicts as bodies too
        for manifest in manifests:
            name = manifest["metadata"]["name"]
            try:
                core.create_node(body=manifest)
            except ApiException as exc:
                if exc.status != 409:
                    raise EnvironmentSetupError(
                        f"creating node {name} failed: {exc.status} {exc.reason}"
                    ) from exc
                core.delete_node(name)
                core.create_node(body=manifest)


def _node_ready(node: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def wait_nodes_ready(kubeconfig: Path, names: list[str], timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    with api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        while True:
            ready = {n.metadata.name for n in core.list_node().items if n.metadata and _node_ready(n)}
            missing = [name for name in names if name not in ready]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise EnvironmentSetupError(
                    f"KWOK did not make nodes {', '.join(missing)} Ready within {timeout_seconds:.0f} s; "
                    "see .localcluster/logs/kwok.log"
                )
            time.sleep(0.2)


def wait_service_account(kubeconfig: Path, namespace: str, name: str, timeout_seconds: float) -> None:
    """Pods cannot be created in a namespace before its ServiceAccount exists."""
    deadline = time.monotonic() + timeout_seconds
    with api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        while True:
            try:
                core.read_namespaced_service_account(name, namespace)
                return
            except ApiException as exc:
                if exc.status != 404:
                    raise
            if time.monotonic() > deadline:
                raise EnvironmentSetupError(
                    f"ServiceAccount {namespace}/{name} did not appear within {timeout_seconds:.0f} s; "
                    "see .localcluster/logs/kube-controller-manager.log"
                )
            time.sleep(0.2)


def apply_manifests(kubeconfig: Path, manifests: list[dict[str, Any]]) -> None:
    """Server-side apply of cluster-scoped objects (CRDs, webhook configurations)."""
    with api_client(kubeconfig) as api:
        dynamic: Any = api  # the generic call_api of ApiClient
        for manifest in manifests:
            group_version = manifest["apiVersion"]
            plural = {
                "CustomResourceDefinition": "customresourcedefinitions",
                "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
                "ValidatingWebhookConfiguration": "validatingwebhookconfigurations",
            }[manifest["kind"]]
            path = f"/apis/{group_version}/{plural}/{manifest['metadata']['name']}"
            method, url, headers, body, _ = dynamic.param_serialize(
                "PATCH",
                path,
                query_params=[("fieldManager", "llmscale-localcluster"), ("force", "true")],
                header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
                body=manifest,
                auth_settings=["BearerToken"],
            )
            response = dynamic.call_api(method, url, header_params=headers, body=body)
            response.read()
            if not 200 <= response.status < 300:
                raise EnvironmentSetupError(
                    f"applying {manifest['kind']} {manifest['metadata']['name']} failed: "
                    f"HTTP {response.status}: {str(response.data)[:300]}"
                )


def wait_crd_established(kubeconfig: Path, name: str, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    with api_client(kubeconfig) as api:
        extensions = client.ApiextensionsV1Api(api)
        while True:
            try:
                crd = extensions.read_custom_resource_definition(name)
                conditions = (crd.status.conditions if crd.status else None) or []
                if any(c.type == "Established" and c.status == "True" for c in conditions):
                    return
            except ApiException as exc:
                if exc.status != 404:
                    raise
            if time.monotonic() > deadline:
                raise EnvironmentSetupError(f"CRD {name} was not Established within {timeout_seconds:.0f} s")
            time.sleep(0.2)

"""charts/llmscale against the real apiserver: server-side dry run of the rendered chart,
install/uninstall (the CRD survives, and the LLMDeployments with it), and the chart's RBAC
proven with the real authorizer (`kubectl auth can-i --as=<service account>`)."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from test_chart_support import CHART, CRD_NAME, Helm, adopt_crd_into_release, helm_for

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def test_rendered_chart_passes_server_side_dry_run(cluster: Any, kubectl: Kubectl, namespace: str) -> None:
    helm = helm_for(cluster)
    for flags in ([], ["--set", f"watchNamespaces={{{namespace}}}"]):
        rendered = helm.run(
            "template", f"dry-{uuid.uuid4().hex[:6]}", str(CHART), "--namespace", namespace, *flags
        ).stdout
        kinds = {doc["kind"] for doc in yaml.safe_load_all(rendered) if doc}
        assert {"Deployment", "CustomResourceDefinition", "ServiceAccount"} <= kinds
        applied = kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
        assert applied.returncode == 0, applied.stderr
        assert "(server dry run)" in applied.stdout


def test_install_establishes_the_crd_and_uninstall_keeps_it(
    cluster: Any, kubectl: Kubectl, namespace: str, custom_objects: client.CustomObjectsApi, wait_for: Any
) -> None:
    helm = helm_for(cluster)
    release = f"inst-{uuid.uuid4().hex[:6]}"
    adopt_crd_into_release(kubectl, release, namespace)
    helm.run("install", release, str(CHART), "--namespace", namespace, "--wait", "--timeout", "120s")
    try:
        established = kubectl(
            "wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s", check=False
        )
        assert established.returncode == 0, established.stderr
        status = helm.run("status", release, "--namespace", namespace, "-o", "json").stdout
        assert '"status":"deployed"' in status.replace(" ", "")
        custom_objects.create_namespaced_custom_object(
            "llmscale.dev", "v1alpha1", namespace, "llmdeployments", _llmdeployment("survivor")
        )
    finally:
        helm.run("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "120s")
    kept = kubectl("get", f"crd/{CRD_NAME}", "-o", "name", check=False)
    assert kept.returncode == 0, "helm uninstall deleted the CRD (crds.keep must prevent it)"
    survivor = custom_objects.get_namespaced_custom_object(
        "llmscale.dev", "v1alpha1", namespace, "llmdeployments", "survivor"
    )
    assert survivor["metadata"]["name"] == "survivor"
    # and the release's own objects are gone
    assert kubectl("get", "clusterrole", f"{release}-llmscale-operator", check=False).returncode != 0


def test_notes_render_for_the_main_combinations(cluster: Any) -> None:
    # `helm install --dry-run=client` still asks the apiserver for its version, hence here
    helm = helm_for(cluster)
    for flags in ([], ["--set", "watchNamespaces={team-a}", "--set", "gateway.enabled=false"]):
        # without the CRD: another test's release may own it (Helm refuses to import it here)
        out = helm.run(
            "install", "notes", str(CHART), "--dry-run=client", "--set", "crds.enabled=false", *flags
        ).stdout
        assert "NOTES:" in out and "kubectl get llmdeployments" in out
        assert ("port-forward" in out) is not bool(flags)
        assert ("namespaces team-a" in out) is bool(flags)


def _llmdeployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "llmscale.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
            "resources": {"gpu": {"product": "H100-80GB"}},
            "scaling": {"mode": "DryRun"},
        },
    }


# ---------------------------------------------------------------------------------------------
# RBAC with the real authorizer


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    watched: str | None  # the one watched namespace, or None for cluster-wide

    def service_account(self, component: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}-llmscale-{component}"


def _install(helm: Helm, core_v1: client.CoreV1Api, kubectl: Kubectl, watched: bool) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    release_ns = f"e2e-chart-rbac-{suffix}"
    watched_ns = f"e2e-chart-watched-{suffix}" if watched else None
    for ns in filter(None, (release_ns, watched_ns)):
        core_v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    name = f"rbac-{suffix}"
    flags = ["--set", f"watchNamespaces={{{watched_ns}}}"] if watched_ns else []
    # the CRD belongs to whichever test installed it first: leave it out of these releases
    helm.run("install", name, str(CHART), "--namespace", release_ns, "--set", "crds.enabled=false", *flags)
    try:
        yield Release(name=name, namespace=release_ns, watched=watched_ns)
    finally:
        helm.run("uninstall", name, "--namespace", release_ns, check=False)
        for ns in filter(None, (release_ns, watched_ns)):
            try:
                core_v1.delete_namespace(ns, propagation_policy="Background")
            except ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture(scope="module")
def cluster_wide(cluster: Any, core_v1: client.CoreV1Api, kubectl: Kubectl) -> Iterator[Release]:
    yield from _install(helm_for(cluster), core_v1, kubectl, watched=False)


@pytest.fixture(scope="module")
def namespaced(cluster: Any, core_v1: client.CoreV1Api, kubectl: Kubectl) -> Iterator[Release]:
    yield from _install(helm_for(cluster), core_v1, kubectl, watched=True)


_CLUSTER_SCOPED = {"nodes", "namespaces", "customresourcedefinitions", "clusterroles"}


def can_i(kubectl: Kubectl, served: set[str], who: str, verb: str, what: str, namespace: str | None) -> bool:
    """Ask the real authorizer whether `who` may `verb` on `what` ("resource[.group][/sub]").

    `kubectl auth can-i --as` for resource types the apiserver serves. For types it does not
    serve (PodMonitor without the Prometheus Operator CRDs) kubectl cannot split the group off
    the name, so those go as a SubjectAccessReview, which is what can-i sends anyway.
    """
    resource_and_group, _, subresource = what.partition("/")
    resource, _, group = resource_and_group.partition(".")
    namespaced = resource not in _CLUSTER_SCOPED
    if resource_and_group in served:
        args = ["auth", "can-i", verb, resource_and_group, f"--as={who}"]
        if subresource:
            args.append(f"--subresource={subresource}")
        if namespaced:
            args += ["--namespace", namespace] if namespace else ["--all-namespaces"]
        answer = kubectl(*args, check=False)
        assert answer.stdout.strip() in ("yes", "no"), answer.stderr
        return answer.stdout.strip() == "yes"
    service_account_namespace = who.split(":")[2]
    attributes = {"verb": verb, "group": group, "resource": resource, "subresource": subresource}
    if namespaced and namespace:
        attributes["namespace"] = namespace
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": who,
            "groups": [
                "system:serviceaccounts",
                f"system:serviceaccounts:{service_account_namespace}",
                "system:authenticated",
            ],
            "resourceAttributes": attributes,
        },
    }
    answer = kubectl("create", "-f", "-", "-o", "jsonpath={.status.allowed}", input=json.dumps(review))
    return answer.stdout.strip() == "true"


def served_resources(kubectl: Kubectl) -> set[str]:
    """Resource types the apiserver serves, spelled as `kubectl auth can-i` takes them."""
    return set(kubectl("api-resources", "-o", "name").stdout.split())


# (verb, resource) the operator needs in a served namespace
OPERATOR_ALLOWED = [
    ("get", "llmdeployments.llmscale.dev"),
    ("list", "llmdeployments.llmscale.dev"),
    ("watch", "llmdeployments.llmscale.dev"),
    ("patch", "llmdeployments.llmscale.dev"),
    ("patch", "llmdeployments.llmscale.dev/status"),
    ("get", "llmdeployments.llmscale.dev/scale"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("delete", "deployments.apps"),
    ("create", "services"),
    ("delete", "services"),
    ("create", "poddisruptionbudgets.policy"),
    ("list", "pods"),
    ("watch", "pods"),
    ("patch", "pods"),
    ("get", "configmaps"),
    ("create", "events"),
    ("create", "events.events.k8s.io"),
    ("create", "podmonitors.monitoring.coreos.com"),
    ("create", "networkpolicies.networking.k8s.io"),
    ("patch", "networkpolicies.networking.k8s.io"),
]
# what the operator must never be able to do
OPERATOR_DENIED = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods/exec"),
    ("create", "llmdeployments.llmscale.dev"),
    ("delete", "llmdeployments.llmscale.dev"),
    ("list", "configmaps"),
    ("update", "configmaps"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("escalate", "roles.rbac.authorization.k8s.io"),
    ("bind", "roles.rbac.authorization.k8s.io"),
    ("impersonate", "serviceaccounts"),
    ("create", "serviceaccounts/token"),
]
OPERATOR_CLUSTER_DENIED = [
    ("list", "nodes"),
    ("patch", "nodes"),
    ("delete", "nodes"),
    ("create", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "namespaces"),
    ("delete", "namespaces"),
]
GATEWAY_ALLOWED = [
    ("get", "llmdeployments.llmscale.dev"),
    ("list", "llmdeployments.llmscale.dev"),
    ("watch", "llmdeployments.llmscale.dev"),
    ("patch", "llmdeployments.llmscale.dev"),
    ("list", "endpointslices.discovery.k8s.io"),
    ("watch", "endpointslices.discovery.k8s.io"),
]
GATEWAY_DENIED = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("delete", "llmdeployments.llmscale.dev"),
    ("patch", "llmdeployments.llmscale.dev/status"),
    ("create", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("patch", "pods"),
    ("create", "pods"),
    ("create", "pods/exec"),
    ("update", "endpointslices.discovery.k8s.io"),
    ("create", "events"),
]


def _check(kubectl: Kubectl, who: str, namespace: str | None, expected: bool, pairs: list[Any]) -> None:
    served = served_resources(kubectl)
    wrong = [(v, r) for v, r in pairs if can_i(kubectl, served, who, v, r, namespace) is not expected]
    assert wrong == [], f"{who} in {namespace or 'cluster'}: expected {'allowed' if expected else 'denied'}"


def test_cluster_wide_operator_rbac(cluster_wide: Release, kubectl: Kubectl, namespace: str) -> None:
    operator = cluster_wide.service_account("operator")
    for ns in (namespace, cluster_wide.namespace):
        _check(kubectl, operator, ns, True, OPERATOR_ALLOWED)
        _check(kubectl, operator, ns, False, OPERATOR_DENIED)
    _check(kubectl, operator, None, True, [("list", "customresourcedefinitions.apiextensions.k8s.io")])
    # a cluster-wide kopf does not observe namespaces, so it may not list them
    _check(kubectl, operator, None, False, [*OPERATOR_CLUSTER_DENIED, ("list", "namespaces")])


def test_cluster_wide_gateway_rbac(cluster_wide: Release, kubectl: Kubectl, namespace: str) -> None:
    gateway = cluster_wide.service_account("gateway")
    _check(kubectl, gateway, namespace, True, GATEWAY_ALLOWED)
    _check(kubectl, gateway, namespace, False, GATEWAY_DENIED)
    _check(kubectl, gateway, None, False, [*OPERATOR_CLUSTER_DENIED, ("list", "namespaces")])
    # its API key Secrets: readable in the release namespace only (denied elsewhere just above)
    _check(kubectl, gateway, cluster_wide.namespace, True, [("get", "secrets"), ("list", "secrets")])
    _check(kubectl, gateway, cluster_wide.namespace, False, [("watch", "secrets"), ("create", "secrets")])


def test_namespaced_rbac_stops_at_the_watched_namespace(
    namespaced: Release, kubectl: Kubectl, namespace: str
) -> None:
    assert namespaced.watched is not None
    operator = namespaced.service_account("operator")
    gateway = namespaced.service_account("gateway")
    _check(kubectl, operator, namespaced.watched, True, OPERATOR_ALLOWED)
    _check(kubectl, operator, namespaced.watched, False, OPERATOR_DENIED)
    _check(kubectl, gateway, namespaced.watched, True, GATEWAY_ALLOWED)
    # an unwatched namespace: nothing at all
    _check(kubectl, operator, namespace, False, OPERATOR_ALLOWED)
    _check(kubectl, gateway, namespace, False, GATEWAY_ALLOWED)
    # cluster scope: read-only observation of CRDs and namespaces only
    _check(
        kubectl,
        operator,
        None,
        True,
        [("watch", "customresourcedefinitions.apiextensions.k8s.io"), ("list", "namespaces")],
    )
    _check(kubectl, operator, None, False, OPERATOR_CLUSTER_DENIED)


def token_kubeconfig(admin_kubeconfig: Path, token: str, target: Path) -> Path:
    """A kubeconfig for the same apiserver that authenticates with a ServiceAccount token."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    context_name = admin["current-context"]
    context = next(c["context"] for c in admin["contexts"] if c["name"] == context_name)
    cluster_entry = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    target.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster_entry],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": cluster_entry["name"], "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    target.chmod(0o600)
    return target


def test_service_account_token_is_the_identity_can_i_checked(
    cluster: Any, namespaced: Release, kubectl: Kubectl, tmp_path: Path
) -> None:
    """The token of the chart's ServiceAccount gets exactly what `can-i --as` promised."""
    assert namespaced.watched is not None
    token = kubectl(
        "create", "token", f"{namespaced.name}-llmscale-operator", "-n", namespaced.namespace
    ).stdout.strip()
    path = token_kubeconfig(cluster.kubeconfig, token, tmp_path / "operator.kubeconfig")
    as_operator = subprocess.run(
        [
            str(cluster.kubectl_path),
            f"--kubeconfig={path}",
            "get",
            "llmdeployments",
            "-n",
            namespaced.watched,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert as_operator.returncode == 0, as_operator.stderr
    secrets = subprocess.run(
        [str(cluster.kubectl_path), f"--kubeconfig={path}", "get", "secrets", "-n", namespaced.watched],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert secrets.returncode != 0 and "forbidden" in secrets.stderr.lower()

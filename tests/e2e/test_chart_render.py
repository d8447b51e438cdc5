"""charts/llmscale with the real helm binary (no cluster): lint, strict schema, rendered objects
for the main value combinations.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml
from test_chart_support import CHART, Helm, helm_path

RELEASE_NAMESPACE = "llmscale-system"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return Helm(helm_path()).run(*args, check=check)


def render(*flags: str, release: str = "llmscale") -> list[dict[str, Any]]:
    out = helm("template", release, str(CHART), "--namespace", RELEASE_NAMESPACE, *flags).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples a rule list grants."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


# ---------------------------------------------------------------------------------------------
# lint and schema


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--set", "watchNamespaces={team-a,team-b}"],
        ["--set", "crds.enabled=false"],
        [
            "--set",
            "monitoring.serviceMonitor.enabled=true",
            "--set",
            "monitoring.podMonitor.enabled=true",
            "--set",
            "monitoring.dashboard.enabled=true",
        ],
    ],
    ids=["default", "watchNamespaces", "no-crds", "monitoring"],
)
def test_helm_lint_passes_strict(flags: list[str]) -> None:
    completed = helm("lint", "--strict", str(CHART), *flags, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "0 chart(s) failed" in completed.stdout


@pytest.mark.parametrize(
    ("flags", "mentions"),
    [
        (["--set", "operatr.replicas=2"], "operatr"),
        (["--set", "operator.replica=2"], "replica"),
        (["--set", "monitoring.serviceMonitor.enable=true"], "enable"),
        (["--set-string", "operator.replicas=two"], "replicas"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "watchNamespaces={Bad_Namespace}"], "watchNamespaces"),
        (["--set", "image.digest=sha256:abc"], "digest"),
        (["--set", "gpuPrices.H100-80GB=-1"], "gpuPrices"),
        (["--set", "operator.resources.requests.cpu=lots"], "cpu"),
        (["--set", "gateway.service.type=ExternalName"], "type"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_schema_rejects_bad_values(flags: list[str], mentions: str) -> None:
    completed = helm("template", "x", str(CHART), *flags, check=False)
    assert completed.returncode != 0, f"accepted {flags}"
    assert "schema" in completed.stderr and mentions in completed.stderr, completed.stderr


# ---------------------------------------------------------------------------------------------
# rendered objects


def test_default_render_objects_and_hardening() -> None:
    objects = render()
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["CustomResourceDefinition"]
        + ["ServiceAccount"] * 2
        + ["ClusterRole"] * 2
        + ["ClusterRoleBinding"] * 2
        + ["Deployment"] * 2
        + ["Service"] * 3  # operator metrics, gateway, gateway pods (headless)
        + ["NetworkPolicy"] * 2  # operator, gateway (networkPolicy.enabled)
        + ["Role", "RoleBinding"]  # the gateway's API key Secrets (gateway.auth.enabled)
    )
    crd = one(objects, "CustomResourceDefinition", "llmdeployments.llmscale.dev")
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crd["spec"]["versions"][0]["subresources"]["scale"]

    operator = one(objects, "Deployment", "llmscale-operator")
    gateway = one(objects, "Deployment", "llmscale-gateway")
    assert operator["spec"]["strategy"]["type"] == "Recreate"
    assert operator["spec"]["replicas"] == 1
    for deployment, account in ((operator, "llmscale-operator"), (gateway, "llmscale-gateway")):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        main = container(deployment)
        assert main["image"] == "llmscale/operator:0.1.0"
        security = main["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert main["resources"]["requests"]["cpu"] and main["resources"]["limits"]["memory"]
        assert main["livenessProbe"]["httpGet"]["path"]

    operator_main = container(operator)
    assert operator_main["args"][0] == "operator"
    env = {e["name"]: e.get("value") for e in operator_main["env"]}
    assert env["LLMSCALE_PROMETHEUS_URL"] == "http://prometheus-operated.monitoring.svc:9090"
    assert env["LLMSCALE_OPERATOR_METRICS_HOST"] == "0.0.0.0"
    metrics_port = next(p["containerPort"] for p in operator_main["ports"] if p["name"] == "metrics")
    assert env["LLMSCALE_OPERATOR_METRICS_PORT"] == str(metrics_port)
    assert not any(a.startswith("--namespace") for a in operator_main["args"])
    assert not any(a.startswith("--peering") for a in operator_main["args"])
    liveness = operator_main["livenessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz"
    health_port = next(p["containerPort"] for p in operator_main["ports"] if p["name"] == liveness["port"])
    assert any(a.endswith(f":{health_port}/healthz") for a in operator_main["args"])
    gateway_args = container(gateway)["args"]
    assert gateway_args[:3] == [
        "gateway",
        "--host=0.0.0.0",
        f"--port={container(gateway)['ports'][0]['containerPort']}",
    ]
    assert "--hold-timeout=300" in gateway_args and "--shutdown-timeout=30" in gateway_args
    assert gateway["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 40
    assert container(gateway)["readinessProbe"]["httpGet"]["path"] == "/health"

    service = one(objects, "Service", "llmscale-gateway")
    assert service["spec"]["selector"] == gateway["spec"]["selector"]["matchLabels"]
    # the operator reads every gateway pod's /metrics through a headless Service
    pods = one(objects, "Service", "llmscale-gateway-pods")
    assert pods["spec"]["clusterIP"] == "None"
    assert pods["spec"]["selector"] == gateway["spec"]["selector"]["matchLabels"]
    operator_env = {
        e["name"]: e.get("value") for e in container(one(objects, "Deployment", "llmscale-operator"))["env"]
    }
    assert (
        operator_env["LLMSCALE_GATEWAY_METRICS_URLS"]
        == "http://llmscale-gateway-pods.llmscale-system.svc:8080"
    )
    off = render("--set", "operator.readGatewayDirectly=false")
    off_env = {e["name"] for e in container(one(off, "Deployment", "llmscale-operator"))["env"]}
    assert "LLMSCALE_GATEWAY_METRICS_URLS" not in off_env


def test_default_rbac_is_cluster_wide_and_least_privilege() -> None:
    objects = render()
    operator_rules = granted(one(objects, "ClusterRole", "llmscale-operator")["rules"])
    gateway_rules = granted(one(objects, "ClusterRole", "llmscale-gateway")["rules"])
    for needed in [
        ("llmscale.dev", "llmdeployments", "watch"),
        ("llmscale.dev", "llmdeployments", "patch"),
        ("llmscale.dev", "llmdeployments/status", "patch"),
        ("apps", "deployments", "create"),
        ("apps", "deployments", "delete"),
        ("apps", "deployments/scale", "patch"),  # the fast wake from zero
        ("leaderworkerset.x-k8s.io", "leaderworkersets", "create"),
        ("leaderworkerset.x-k8s.io", "leaderworkersets/scale", "patch"),
        ("", "services", "create"),
        ("policy", "poddisruptionbudgets", "create"),
        ("", "pods", "patch"),
        ("", "events", "create"),
        ("events.k8s.io", "events", "create"),
        ("", "configmaps", "get"),
        ("monitoring.coreos.com", "podmonitors", "create"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ]:
        assert needed in operator_rules, needed
    # a cluster-wide kopf never observes namespaces (kopf/_core/reactor/observation.py)
    assert not any(resource == "namespaces" for _, resource, _ in operator_rules)
    assert gateway_rules == {
        ("llmscale.dev", "llmdeployments", verb) for verb in ("get", "list", "watch", "patch")
    } | {("discovery.k8s.io", "endpointslices", verb) for verb in ("get", "list", "watch")}
    for rules in (operator_rules, gateway_rules):
        resources = {resource for _, resource, _ in rules}
        verbs = {verb for _, _, verb in rules}
        assert "*" not in resources and "*" not in verbs
        assert not resources & {"secrets", "nodes", "pods/exec", "clusterroles", "rolebindings"}
        assert not verbs & {"escalate", "bind", "impersonate"}
    assert ("", "pods", "create") not in operator_rules and ("", "pods", "delete") not in operator_rules
    assert ("llmscale.dev", "llmdeployments", "delete") not in operator_rules
    bindings = by_kind(objects, "ClusterRoleBinding")
    assert {b["subjects"][0]["name"] for b in bindings} == {"llmscale-operator", "llmscale-gateway"}
    assert all(b["subjects"][0]["namespace"] == RELEASE_NAMESPACE for b in bindings)


def test_watch_namespaces_gives_roles_per_namespace() -> None:
    objects = render("--set", "watchNamespaces={team-a,team-b}")
    roles = by_kind(objects, "Role")
    assert sorted((r["metadata"]["namespace"], r["metadata"]["name"]) for r in roles) == [
        ("llmscale-system", "llmscale-gateway-api-keys"),
        ("team-a", "llmscale-gateway"),
        ("team-a", "llmscale-operator"),
        ("team-b", "llmscale-gateway"),
        ("team-b", "llmscale-operator"),
    ]
    for binding in by_kind(objects, "RoleBinding"):
        assert binding["subjects"][0]["namespace"] == RELEASE_NAMESPACE
        assert binding["roleRef"]["kind"] == "Role"
    # only read-only observation of CRDs and namespaces (kopf matches --namespace names) stays
    # cluster-wide
    cluster_roles = by_kind(objects, "ClusterRole")
    assert [r["metadata"]["name"] for r in cluster_roles] == ["llmscale-operator"]
    assert granted(cluster_roles[0]["rules"]) == {
        (group, resource, verb)
        for group, resource in (("apiextensions.k8s.io", "customresourcedefinitions"), ("", "namespaces"))
        for verb in ("list", "watch")
    }
    operator_role = next(r for r in roles if r["metadata"]["name"] == "llmscale-operator")
    assert ("apps", "deployments", "create") in granted(operator_role["rules"])
    for component in ("operator", "gateway"):
        args = container(one(objects, "Deployment", f"llmscale-{component}"))["args"]
        assert [a for a in args if a.startswith("--namespace")] == [
            "--namespace=team-a",
            "--namespace=team-b",
        ]


def test_crds_can_be_left_out_or_not_kept() -> None:
    assert by_kind(render("--set", "crds.enabled=false"), "CustomResourceDefinition") == []
    crd = by_kind(render("--set", "crds.keep=false"), "CustomResourceDefinition")[0]
    assert "helm.sh/resource-policy" not in (crd["metadata"].get("annotations") or {})


def test_monitoring_objects_and_dashboard() -> None:
    objects = render(
        "--set",
        "monitoring.serviceMonitor.enabled=true",
        "--set",
        "monitoring.podMonitor.enabled=true",
        "--set",
        "monitoring.dashboard.enabled=true",
        "--set",
        "monitoring.dashboard.namespace=grafana",
        "--set",
        "monitoring.serviceMonitor.labels.release=kube-prometheus",
    )
    service_monitor = one(objects, "ServiceMonitor", "llmscale")
    assert service_monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert {e["port"] for e in service_monitor["spec"]["endpoints"]} == {"metrics", "http"}
    pod_monitor = one(objects, "PodMonitor", "llmscale")
    assert {e["port"] for e in pod_monitor["spec"]["podMetricsEndpoints"]} == {"metrics", "http"}
    dashboard = one(objects, "ConfigMap", "llmscale-dashboard")
    assert dashboard["metadata"]["namespace"] == "grafana"
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(dashboard["data"]["llmscale.json"])
    titles = " | ".join(panel["title"] for panel in board["panels"])
    for topic in ("Load", "Replicas", "Strategy", "TTFT p95", "ITL p95", "SLO attainment", "GPU-hours"):
        assert topic in titles
    queries = " ".join(t["expr"] for panel in board["panels"] for t in panel["targets"])
    # series the operator, the gateway and vLLM export
    # (operator/llmscale/controller/autoscaling/operator_metrics.py,
    # operator/llmscale/gateway/metrics.py, DESIGN.md section 4)
    for series in (
        "llmscale_desired_replicas",
        "llmscale_ready_replicas",
        "llmscale_current_replicas",
        "llmscale_strategy_info",
        "llmscale_observed_ttft_p95_seconds",
        "llmscale_gpu_hours",
        "llmscale_gateway_arrivals_total",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket",
    ):
        assert series in queries
    # the metrics Service the ServiceMonitor selects exists and names its port "metrics"
    metrics_service = one(objects, "Service", "llmscale-operator-metrics")
    assert metrics_service["spec"]["ports"][0]["name"] == "metrics"


def test_gateway_can_be_disabled() -> None:
    objects = render("--set", "gateway.enabled=false")
    names = {o["metadata"]["name"] for o in objects}
    assert not any(name.endswith("-gateway") for name in names)


def test_more_replicas_turn_on_kopf_peering() -> None:
    objects = render("--set", "operator.replicas=2")
    args = container(one(objects, "Deployment", "llmscale-operator"))["args"]
    assert "--peering=llmscale" in args
    rules = granted(one(objects, "ClusterRole", "llmscale-operator")["rules"])
    assert ("kopf.dev", "clusterkopfpeerings", "patch") in rules
    assert one(objects, "ClusterKopfPeering", "llmscale")
    namespaced = render("--set", "operator.replicas=2", "--set", "watchNamespaces={team-a,team-b}")
    peerings = by_kind(namespaced, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    role = next(r for r in by_kind(namespaced, "Role") if r["metadata"]["name"] == "llmscale-operator")
    assert ("kopf.dev", "kopfpeerings", "patch") in granted(role["rules"])
    # one replica: standalone, no peering objects or rules
    single = render()
    assert by_kind(single, "ClusterKopfPeering") == []
    assert not any(group == "kopf.dev" for group, _, _ in granted(by_kind(single, "ClusterRole")[0]["rules"]))


def test_kopf_peering_crds_ship_in_the_crds_folder() -> None:
    out = helm("template", "llmscale", str(CHART), "--include-crds").stdout
    names = {
        d["metadata"]["name"]
        for d in yaml.safe_load_all(out)
        if d and d["kind"] == "CustomResourceDefinition"
    }
    assert names == {"llmdeployments.llmscale.dev", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}


def test_gpu_prices_image_digest_and_extra_args_reach_the_pods() -> None:
    digest = "sha256:" + "ab" * 32
    objects = render(
        "--set-json",
        'gpuPrices={"H100-80GB": 2.49, "L4": 0.71}',
        "--set",
        f"image.digest={digest}",
        "--set",
        "image.tag=1.2.3",
        "--set",
        "operator.extraArgs={--verbose}",
    )
    main = container(one(objects, "Deployment", "llmscale-operator"))
    env = {e["name"]: e.get("value") for e in main["env"]}
    assert json.loads(env["LLMSCALE_GPU_PRICES"]) == {"H100-80GB": 2.49, "L4": 0.71}
    assert main["image"] == f"llmscale/operator:1.2.3@{digest}"
    assert main["args"][-1] == "--verbose"


def test_existing_service_accounts_must_be_named_and_are_bound() -> None:
    missing = helm("template", "x", str(CHART), "--set", "operator.serviceAccount.create=false", check=False)
    assert missing.returncode != 0 and "operator.serviceAccount.name is required" in missing.stderr
    objects = render(
        "--set",
        "operator.serviceAccount.create=false",
        "--set",
        "operator.serviceAccount.name=platform-operator",
    )
    assert [sa["metadata"]["name"] for sa in by_kind(objects, "ServiceAccount")] == ["llmscale-gateway"]
    binding = one(objects, "ClusterRoleBinding", "llmscale-operator")
    assert binding["subjects"][0]["name"] == "platform-operator"
    pod = one(objects, "Deployment", "llmscale-operator")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "platform-operator"


# ---------------------------------------------------------------------------------------------
# security defaults (issue: secure and production-grade by default)


def test_gateway_auth_is_on_by_default_and_reads_keys_only_in_its_namespace() -> None:
    objects = render()
    args = container(one(objects, "Deployment", "llmscale-gateway"))["args"]
    assert "--auth=api-key" in args and "--api-key-namespace=llmscale-system" in args
    assert "--rate-limit=600" in args
    role = one(objects, "Role", "llmscale-gateway-api-keys")
    assert role["metadata"]["namespace"] == RELEASE_NAMESPACE
    assert granted(role["rules"]) == {("", "secrets", "get"), ("", "secrets", "list")}
    binding = one(objects, "RoleBinding", "llmscale-gateway-api-keys")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "llmscale-gateway", "namespace": RELEASE_NAMESPACE}
    ]


def test_auth_off_is_explicit_and_noted() -> None:
    objects = render("--set", "gateway.auth.enabled=false")
    args = container(one(objects, "Deployment", "llmscale-gateway"))["args"]
    assert "--auth=none" in args
    assert [r for r in by_kind(objects, "Role") if r["metadata"]["name"].endswith("api-keys")] == []


def test_network_policies_admit_only_what_each_component_serves() -> None:
    objects = render()
    operator = one(objects, "NetworkPolicy", "llmscale-operator")["spec"]
    prometheus_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    }
    assert operator["ingress"] == [{"from": [prometheus_peer], "ports": [{"protocol": "TCP", "port": 9090}]}]
    gateway = one(objects, "NetworkPolicy", "llmscale-gateway")["spec"]
    assert gateway["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    ingress_controller = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
    restricted = render("--set-json", f"networkPolicy.gatewayFrom=[{json.dumps(ingress_controller)}]")
    gateway_from = one(restricted, "NetworkPolicy", "llmscale-gateway")["spec"]["ingress"][0]["from"]
    operator_labels = one(objects, "Deployment", "llmscale-operator")["spec"]["selector"]["matchLabels"]
    operator_peer = {"podSelector": {"matchLabels": operator_labels}}
    assert gateway_from == [ingress_controller, prometheus_peer, operator_peer]  # the direct /metrics read
    args = container(one(objects, "Deployment", "llmscale-operator"))["args"]
    assert "--network-policy=on" in args and "--gateway-namespace=llmscale-system" in args
    assert (
        "--gateway-pod-labels=app.kubernetes.io/component=gateway,app.kubernetes.io/instance=llmscale,"
        "app.kubernetes.io/name=llmscale" in args
    )
    assert "--prometheus-pod-labels=app.kubernetes.io/name=prometheus" in args
    off = render("--set", "networkPolicy.enabled=false")
    assert by_kind(off, "NetworkPolicy") == []
    assert "--network-policy=off" in container(one(off, "Deployment", "llmscale-operator"))["args"]


def test_chart_pods_pin_their_non_root_user() -> None:
    for name in ("llmscale-operator", "llmscale-gateway"):
        pod = one(render(), "Deployment", name)["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 65532
        assert pod["containers"][0]["securityContext"]["runAsUser"] == 65532

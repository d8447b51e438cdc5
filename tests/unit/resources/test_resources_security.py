"""The vLLM pod passes the restricted Pod Security Standard, has host compute requests, and a
NetworkPolicy that admits only the gateway and Prometheus (expected values written by hand from
the Kubernetes Pod Security Standards page and the formula in docs/api.md)."""

from __future__ import annotations

from typing import Any

import pytest

from llmscale.api import LLMDeployment
from llmscale.errors import UserInputError
from llmscale.resources import build_deployment, evaluate_fit, owner_reference, resolve_serving
from llmscale.resources.networkpolicy import (
    NetworkPolicySettings,
    Peer,
    build_network_policy,
    parse_label_map,
)

OWNER = owner_reference("llmscale.dev/v1alpha1", "LLMDeployment", "llama", "uid-1")


def resource(**spec: Any) -> LLMDeployment:
    body = {
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
        "resources": {"gpu": {"product": "L4"}},
        "engine": {"maxModelLen": 4096},
        **spec,
    }
    return LLMDeployment.model_validate(
        {"metadata": {"name": "llama", "namespace": "team-a", "uid": "uid-1"}, "spec": body}
    )


def pod_spec(r: LLMDeployment) -> dict[str, Any]:
    serving = resolve_serving(r.spec, evaluate_fit(r.spec).plan)
    return build_deployment(r, serving, OWNER, 1)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def test_pod_meets_every_restricted_pod_security_check() -> None:
    pod = pod_spec(resource())
    (container,) = pod["containers"]
    sc = container["securityContext"]
    # restricted: runAsNonRoot, allowPrivilegeEscalation=false, drop ALL, RuntimeDefault seccomp
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsNonRoot"] is True and sc["privileged"] is False
    # beyond restricted: pinned non-root ids, read-only root, no token, no hostPath
    # a high uid (>= 10000) cannot collide with a host account
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["fsGroup"]) == (65532, 65532)
    assert sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False
    assert all("hostPath" not in v for v in pod["volumes"])
    assert not any(pod.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))


def test_the_default_engine_image_is_pinned_by_digest_and_a_user_image_is_kept() -> None:
    import re

    (container,) = pod_spec(resource())["containers"]
    # repo:tag@sha256:<64 hex>: the tag for humans, the digest for the kubelet (CKV_K8S_43).
    assert re.fullmatch(r"vllm/vllm-openai:v0\.11\.0@sha256:[0-9a-f]{64}", container["image"])
    (mine,) = pod_spec(resource(engine={"maxModelLen": 4096, "image": "registry.example/vllm:1"}))[
        "containers"
    ]
    assert mine["image"] == "registry.example/vllm:1"


def test_writable_volumes_cover_home_tmp_cache_and_shm() -> None:
    pod = pod_spec(resource())
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts == {
        "/dev/shm": "dshm",
        "/home/vllm": "home",
        "/tmp": "tmp",
        "/var/cache/huggingface": "model-cache",
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert all("emptyDir" in volumes[name] for name in ("dshm", "home", "tmp", "model-cache"))
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["HOME"] == "/home/vllm" and env["TMPDIR"] == "/tmp"
    assert env["VLLM_NO_USAGE_STATS"] == "1"


def test_user_security_context_keys_win_and_the_rest_stays_restricted() -> None:
    pod = pod_spec(
        resource(
            podSecurityContext={"runAsUser": 2000, "fsGroup": 3000},
            securityContext={"readOnlyRootFilesystem": False},
            automountServiceAccountToken=True,
            runtimeClassName="nvidia",
        )
    )
    assert pod["securityContext"]["runAsUser"] == 2000 and pod["securityContext"]["fsGroup"] == 3000
    assert pod["securityContext"]["runAsNonRoot"] is True
    sc = pod["containers"][0]["securityContext"]
    assert sc["readOnlyRootFilesystem"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is True and pod["runtimeClassName"] == "nvidia"


def test_compute_requests_follow_the_documented_formula() -> None:
    # Llama-3.1-8B: 8,030,261,248 parameters x 2 bytes = 14.96 GiB of weights; one L4.
    # memory = 4 + 2 x 1 + 14.96 + 1 (shm) = 21.96 -> 22Gi; cpu = 2 + 1 = 3
    resources = pod_spec(resource())["containers"][0]["resources"]
    assert resources["requests"] == {"nvidia.com/gpu": "1", "cpu": "3", "memory": "22Gi"}
    assert resources["limits"] == {"nvidia.com/gpu": "1", "memory": "22Gi"}
    assert "cpu" not in resources["limits"]  # no CFS throttling of the engine loop


def test_spec_resources_override_the_formula() -> None:
    r = resource(resources={"gpu": {"product": "L4"}, "cpu": "6", "memory": "40Gi"})
    resources = pod_spec(r)["containers"][0]["resources"]
    assert resources["requests"]["cpu"] == "6"
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == "40Gi"


def test_unknown_model_reserves_what_its_gpus_can_hold() -> None:
    # no plan: weights <= 2 x 22.06 GiB (L4 as CUDA reports it) x 0.9 = 39.71 GiB
    # memory = 4 + 2 x 2 + 39.71 + 2 = 49.71 -> 50Gi; cpu = 2 + 2 = 4
    r = resource(model={"name": "acme/secret-model"}, resources={"gpu": {"product": "L4", "count": 2}})
    serving = resolve_serving(r.spec, None)
    assert (serving.cpu_request, serving.memory_request) == ("4", "50Gi")


def test_tensor_parallel_shm_is_memory_backed_and_sized_per_gpu() -> None:
    r = resource(
        model={"name": "meta-llama/Llama-3.1-70B-Instruct"},
        resources={"gpu": {"product": "H100-80GB", "count": 4}},
        engine={"tensorParallelSize": 4, "maxModelLen": 4096},
    )
    shm = next(v for v in pod_spec(r)["volumes"] if v["name"] == "dshm")
    assert shm == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "4Gi"}}


def test_network_policy_admits_only_gateway_prometheus_and_own_pods() -> None:
    settings = NetworkPolicySettings(
        gateway=Peer("llmscale-system", {"app.kubernetes.io/component": "gateway"}),
        prometheus=Peer("monitoring", {"app.kubernetes.io/name": "prometheus"}),
    )
    policy = build_network_policy(resource(), OWNER, settings)
    assert policy["apiVersion"] == "networking.k8s.io/v1" and policy["kind"] == "NetworkPolicy"
    assert policy["metadata"]["namespace"] == "team-a"
    assert policy["metadata"]["ownerReferences"] == [OWNER]
    spec = policy["spec"]
    assert spec["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "vllm", "llmscale.dev/deployment": "llama"}
    }
    assert spec["policyTypes"] == ["Ingress"]
    first, own = spec["ingress"]
    assert first["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert first["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "llmscale-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
        },
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        },
    ]
    assert own == {"from": [{"podSelector": {"matchLabels": spec["podSelector"]["matchLabels"]}}]}


def test_label_flags_parse_and_reject_entries_without_equals() -> None:
    assert parse_label_map("--x", "a=b, c=d,") == {"a": "b", "c": "d"}
    with pytest.raises(UserInputError, match="--gateway-pod-labels: 'app' is not a key=value label"):
        parse_label_map("--gateway-pod-labels", "app")

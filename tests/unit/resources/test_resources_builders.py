"""Golden assertions on the manifests built from an LLMDeployment."""

from __future__ import annotations

from typing import Any

import pytest

from llmscale.api import LLMDeployment
from llmscale.resources import (
    build_deployment,
    build_pdb,
    build_pod_monitor,
    build_service,
    evaluate_fit,
    owner_reference,
    resolve_serving,
    selector_string,
    wants_pdb,
)
from llmscale.resources.serving import ServingConfig

OWNER = owner_reference("llmscale.dev/v1alpha1", "LLMDeployment", "llama", "uid-1")
LABELS = {
    "app.kubernetes.io/name": "vllm",
    "app.kubernetes.io/managed-by": "llmscale",
    "app.kubernetes.io/instance": "llama",
    "llmscale.dev/deployment": "llama",
}


def resource(**spec: Any) -> LLMDeployment:
    body = {
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": "llama"},
        "resources": {"gpu": {"product": "H100-80GB"}},
        "engine": {"maxModelLen": 8192},
        **spec,
    }
    return LLMDeployment.model_validate(
        {"metadata": {"name": "llama", "namespace": "team-a", "uid": "uid-1"}, "spec": body}
    )


def serving_of(r: LLMDeployment) -> ServingConfig:
    return resolve_serving(r.spec, evaluate_fit(r.spec).plan)


def deployment(r: LLMDeployment, replicas: int | None = 2) -> dict[str, Any]:
    return build_deployment(r, serving_of(r), OWNER, replicas)


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def test_deployment_runs_vllm_serve_with_the_spec_args() -> None:
    c = container(
        deployment(resource(engine={"maxModelLen": 8192, "extraArgs": ["--enable-prefix-caching"]}))
    )
    assert c["command"] == ["vllm", "serve"]
    assert c["args"] == [
        "meta-llama/Llama-3.1-8B-Instruct",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--served-model-name",
        "llama",
        "--tensor-parallel-size",
        "1",
        "--max-model-len",
        "8192",
        "--gpu-memory-utilization",
        "0.9",
        "--enable-prefix-caching",
    ]
    assert c["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]


def test_quantization_dtype_revision_and_pipeline_parallel_flags() -> None:
    r = resource(
        model={"name": "Qwen/Qwen2.5-72B-Instruct", "revision": "abc123"},
        engine={"quantization": "awq", "dtype": "float16", "tensorParallelSize": 2, "maxModelLen": 4096},
        resources={"gpu": {"product": "A100-80GB", "count": 4}},
    )
    args = container(deployment(r))["args"]
    joined = " ".join(args)
    assert "--tensor-parallel-size 2 --pipeline-parallel-size 2" in joined
    assert "--quantization awq" in joined and "--dtype float16" in joined and "--revision abc123" in joined
    assert args[args.index("--served-model-name") + 1] == "Qwen/Qwen2.5-72B-Instruct"
    assert container(deployment(r))["resources"]["limits"]["nvidia.com/gpu"] == "4"


def test_planner_picks_tensor_parallel_and_gpu_count_when_unset() -> None:
    r = resource(model={"name": "meta-llama/Llama-3.1-70B-Instruct"}, engine={"maxModelLen": 8192})
    c = container(deployment(r))
    assert c["args"][c["args"].index("--tensor-parallel-size") + 1] == "2"
    # Llama-3.1-70B: 70,553,706,496 parameters x 2 bytes = 131.42 GiB of weights.
    # memory = 4 base + 2 x 2 GPUs + 131.42 weights + 2 x 1 GiB /dev/shm = 141.42 -> 142Gi
    # cpu = 2 + 1 x 2 GPUs = 4
    assert c["resources"] == {
        "limits": {"nvidia.com/gpu": "2", "memory": "142Gi"},
        "requests": {"nvidia.com/gpu": "2", "cpu": "4", "memory": "142Gi"},
    }


def test_gpu_scheduling_affinity_tolerations_and_shm() -> None:
    pod = deployment(resource())["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-H100-80GB-HBM3"]}
            ]
        }
    ]
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["volumes"][0] == {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container(deployment(resource()))["volumeMounts"]


def test_user_affinity_is_anded_with_the_gpu_product() -> None:
    zone = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a"]}
    user = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [zone]}]
            }
        },
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
    }
    extra = {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}
    pod = deployment(resource(affinity=user, tolerations=[extra], nodeSelector={"pool": "gpu"}))["spec"][
        "template"
    ]["spec"]
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"][0] == zone
    assert term["matchExpressions"][1]["key"] == "nvidia.com/gpu.product"
    assert "podAntiAffinity" in pod["affinity"]
    assert pod["tolerations"][1] == extra
    assert pod["nodeSelector"] == {"pool": "gpu"}


def test_probes_are_on_health_and_startup_is_sized_from_the_weights() -> None:
    c = container(deployment(resource()))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    # 15 GiB of weights: 120 s + 15 GiB / 200 MiB/s = 197 s -> 20 periods of 10 s
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] == 200
    big = container(deployment(resource(model={"name": "Qwen/Qwen2.5-72B-Instruct"})))
    assert big["startupProbe"]["failureThreshold"] > c["startupProbe"]["failureThreshold"]
    unknown = container(deployment(resource(model={"name": "example/unknown"})))
    assert unknown["startupProbe"]["failureThreshold"] * 10 == 1800


def test_drain_and_termination_grace() -> None:
    r = resource(scaling={"slo": {"itlP95": "50ms"}})
    pod = deployment(r)["spec"]["template"]["spec"]
    assert pod["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 15}}}
    # 15 s drain + 8192 tokens x 50 ms (the longest request meeting the ITL SLO)
    assert pod["terminationGracePeriodSeconds"] == 15 + 410
    short = deployment(resource(terminationGracePeriodSeconds=10))["spec"]["template"]["spec"]
    assert short["terminationGracePeriodSeconds"] == 10
    # the API server wants the preStop sleep shorter than the grace period
    assert short["containers"][0]["lifecycle"] == {"preStop": {"sleep": {"seconds": 9}}}
    instant = deployment(resource(terminationGracePeriodSeconds=0))["spec"]["template"]["spec"]
    assert "lifecycle" not in instant["containers"][0]


def test_hf_token_cache_and_user_env() -> None:
    r = resource(
        hfTokenSecretRef={"name": "hf"},
        modelCache={"persistentVolumeClaim": {"claimName": "cache", "readOnly": True}},
        env=[{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}, {"name": "HF_HOME", "value": "/elsewhere"}],
    )
    c = container(deployment(r))
    assert c["env"] == [
        {"name": "HF_HOME", "value": "/var/cache/huggingface"},
        {"name": "HOME", "value": "/home/vllm"},
        {"name": "TMPDIR", "value": "/tmp"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "HF_TOKEN_PATH", "value": "/var/run/secrets/huggingface/token"},
        {"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"},
    ]
    # the token is a read-only file (group-readable), never an environment variable
    token_volume = deployment(r)["spec"]["template"]["spec"]["volumes"][-1]
    assert token_volume == {
        "name": "hf-token",
        "secret": {"secretName": "hf", "items": [{"key": "HF_TOKEN", "path": "token"}], "defaultMode": 0o440},
    }
    assert {"name": "hf-token", "mountPath": "/var/run/secrets/huggingface", "readOnly": True} in c[
        "volumeMounts"
    ]
    volumes = deployment(r)["spec"]["template"]["spec"]["volumes"]
    assert volumes[1] == {
        "name": "model-cache",
        "persistentVolumeClaim": {"claimName": "cache", "readOnly": True},
    }
    assert {"name": "model-cache", "mountPath": "/var/cache/huggingface", "readOnly": True} in c[
        "volumeMounts"
    ]
    default_cache = deployment(resource())["spec"]["template"]["spec"]["volumes"][1]
    assert default_cache == {"name": "model-cache", "emptyDir": {}}
    sized = deployment(resource(modelCache={"emptyDir": {"sizeLimit": "50Gi"}}))["spec"]["template"]["spec"]
    assert sized["volumes"][1] == {"name": "model-cache", "emptyDir": {"sizeLimit": "50Gi"}}


def test_labels_annotations_and_owner() -> None:
    d = deployment(
        resource(
            podLabels={"llmscale.dev/runner": "emulator"},
            podAnnotations={"llmscale.dev/startup-delay": "20s", "prometheus.io/port": "9999"},
        )
    )
    assert d["metadata"]["labels"] == LABELS
    assert d["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "llmscale.dev/v1alpha1",
            "kind": "LLMDeployment",
            "name": "llama",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert d["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "vllm", "llmscale.dev/deployment": "llama"}
    }
    template = d["spec"]["template"]["metadata"]
    assert template["labels"] == {**LABELS, "llmscale.dev/runner": "emulator"}
    assert template["annotations"] == {
        "llmscale.dev/startup-delay": "20s",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8000",
        "prometheus.io/path": "/metrics",
    }
    assert selector_string("llama") == "app.kubernetes.io/name=vllm,llmscale.dev/deployment=llama"


def test_replicas_omitted_when_another_manager_owns_them() -> None:
    assert deployment(resource(), replicas=3)["spec"]["replicas"] == 3
    assert "replicas" not in deployment(resource(), replicas=None)["spec"]
    strategy = deployment(resource())["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_service_pdb_and_pod_monitor() -> None:
    r = resource()
    service = build_service(r, OWNER)
    assert service["metadata"]["name"] == "llama" and service["metadata"]["namespace"] == "team-a"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == {
        "app.kubernetes.io/name": "vllm",
        "llmscale.dev/deployment": "llama",
    }
    pdb = build_pdb(r, OWNER)
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": service["spec"] and {"matchLabels": service["spec"]["selector"]},
    }
    assert (wants_pdb(1), wants_pdb(2)) == (False, True)
    monitor = build_pod_monitor(r, OWNER)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_label_llmscale_dev_deployment"],
        "targetLabel": "llmdeployment",
    } in (endpoint["relabelings"])


@pytest.mark.parametrize(
    ("spec", "status", "reason", "fragment"),
    [
        ({}, "True", "ModelFits", "15.0 GiB of weights on 1 x H100-80GB"),
        (
            {
                "model": {"name": "meta-llama/Llama-3.1-405B-Instruct"},
                "resources": {"gpu": {"product": "L4", "count": 1}},
            },
            "False",
            "ModelDoesNotFit",
            "GiB",
        ),
        (
            {"engine": {"maxModelLen": 1_000_000}},
            "False",
            "ContextTooLong",
            "spec.engine.maxModelLen: value 1000000",
        ),
        ({"model": {"name": "example/in-house"}}, "Unknown", "UnknownModel", "spec.model.architecture"),
        (
            {"model": {"name": "example/in-house", "architecture": {"hidden_size": 4096}}},
            "False",
            "InvalidForModel",
            "spec.model.architecture: missing field",
        ),
    ],
)
def test_fit_verdicts(spec: dict[str, Any], status: str, reason: str, fragment: str) -> None:
    verdict = evaluate_fit(resource(**spec).spec)
    assert (verdict.status, verdict.reason) == (status, reason)
    assert fragment in verdict.message
    assert verdict.blocks_pods == (status == "False")

from __future__ import annotations

from pathlib import Path

import yaml

from llmscale_tools.localcluster import components, kwok_config, pod_discovery, prometheus_config
from llmscale_tools.localcluster.build import version_ldflags
from llmscale_tools.localcluster.layout import StateLayout
from llmscale_tools.localcluster.ports import ClusterPorts


def _stage(name: str) -> dict[str, object]:
    stages = {s["metadata"]["name"]: s for s in yaml.safe_load_all(kwok_config.render_stages_yaml())}
    stage: dict[str, object] = stages[name]["spec"]
    return stage


def test_pod_ready_waits_for_the_startup_delay_annotation_default_one_second() -> None:
    delay = _stage("pod-ready")["delay"]
    assert delay == {
        "durationMilliseconds": 1000,
        "durationFrom": {"expressionFrom": '.metadata.annotations["llmscale.dev/startup-delay"]'},
    }


def test_pod_delete_is_the_general_stage_that_respects_finalizers() -> None:
    expressions = _stage("pod-delete")["selector"]["matchExpressions"]  # type: ignore[index]
    assert {"key": ".metadata.finalizers", "operator": "DoesNotExist"} in expressions


def test_nodes_get_a_heartbeat_and_kwok_is_told_which_nodes_to_manage() -> None:
    assert _stage("node-heartbeat")["delay"] == {"durationMilliseconds": 10000}
    argv = kwok_config.kwok_command("kwok", "/k", "/s.yaml", 19247)
    assert "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake" in argv
    assert "--cidr=127.64.0.0/16" in argv


def test_gpu_nodes_advertise_gpus_with_feature_discovery_labels_and_taint() -> None:
    nodes = {n.name: kwok_config.node_manifest(n) for n in kwok_config.DEFAULT_NODES}
    assert set(nodes) == {
        "gpu-h100-0",
        "gpu-h100-1",
        "gpu-h100-2",
        "gpu-h100-3",
        "gpu-a100-0",
        "gpu-l4-0",
        "cpu-0",
    }
    h100 = nodes["gpu-h100-0"]
    assert h100["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert h100["metadata"]["labels"]["llmscale.dev/gpu-product"] == "H100-80GB"
    assert h100["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    assert h100["status"]["allocatable"]["pods"] == "256"
    assert h100["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert nodes["gpu-l4-0"]["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-L4"
    assert "nvidia.com/gpu" not in nodes["cpu-0"]["status"]["allocatable"]
    assert nodes["cpu-0"]["spec"]["taints"] == []


def test_prometheus_keeps_annotated_pods_and_labels_namespace_pod_llmdeployment(tmp_path: Path) -> None:
    config = prometheus_config.render_prometheus_config("https://127.0.0.1:19443", StateLayout(tmp_path))
    assert config["global"]["scrape_interval"] == "1s"
    job = config["scrape_configs"][0]
    assert job["job_name"] == "kubernetes-pods"
    assert job["file_sd_configs"][0]["files"] == [str(tmp_path / "prometheus" / "targets" / "pods.json")]
    targets = {r.get("target_label") for r in job["relabel_configs"]}
    assert {"namespace", "pod", "node", "llmdeployment", "__address__", "__metrics_path__"} <= targets
    keep = job["relabel_configs"][0]
    assert keep["action"] == "keep" and keep["regex"] == "true"


def test_apiserver_has_rbac_and_service_account_signing(tmp_path: Path) -> None:
    argv = components.apiserver_command(tmp_path / "bin", StateLayout(tmp_path), ClusterPorts())
    assert "--authorization-mode=RBAC" in argv
    assert "--bind-address=127.0.0.1" in argv and "--secure-port=19443" in argv
    assert any(a.startswith("--service-account-signing-key-file=") for a in argv)
    assert not any("disable-admission-plugins" in a for a in argv)
    # GPU pods without their own toleration schedule, as on managed clusters
    assert "--enable-admission-plugins=ExtendedResourceToleration" in argv


def test_version_stamp_covers_server_and_client() -> None:
    flags = version_ldflags("v1.34.4")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.34.4" in flags
        assert f"-X {package}.gitMajor=1" in flags
        assert f"-X {package}.gitMinor=34" in flags


def test_kubernetes_discovery_variant_for_a_prometheus_that_has_it(tmp_path: Path) -> None:
    config = prometheus_config.render_prometheus_config(
        "https://127.0.0.1:19443", StateLayout(tmp_path), discovery="kubernetes"
    )
    sd = config["scrape_configs"][0]["kubernetes_sd_configs"][0]
    assert sd["role"] == "pod" and sd["api_server"] == "https://127.0.0.1:19443"


def test_file_discovery_labels_match_what_kubernetes_sd_would_give() -> None:
    pod = {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "u",
            "labels": {"llmscale.dev/deployment": "chat"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8000"},
        },
        "spec": {"nodeName": "gpu-l4-0"},
        "status": {
            "podIP": "127.64.0.3",
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    groups = pod_discovery.render_targets([pod, {"metadata": {"name": "q", "namespace": "ns"}}])
    assert len(groups) == 1  # a pod without an IP is no target
    labels = groups[0]["labels"]
    assert groups[0]["targets"] == ["127.64.0.3"]
    assert labels["__meta_kubernetes_pod_label_llmscale_dev_deployment"] == "chat"
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    assert labels["__meta_kubernetes_pod_node_name"] == "gpu-l4-0"
    assert labels["__meta_kubernetes_pod_ready"] == "true"


def test_runner_pods_get_ready_only_at_the_time_the_pod_runner_writes() -> None:
    plain = _stage("pod-ready")["selector"]["matchExpressions"]  # type: ignore[index]
    assert {"key": '.metadata.labels["llmscale.dev/runner"]', "operator": "DoesNotExist"} in plain
    runner = _stage("pod-ready-runner")
    assert {"key": '.metadata.annotations["llmscale.dev/ready-at"]', "operator": "Exists"} in runner[
        "selector"
    ]["matchExpressions"]  # type: ignore[index]
    assert runner["delay"]["durationFrom"] == {  # type: ignore[index]
        "expressionFrom": '.metadata.annotations["llmscale.dev/ready-at"]'
    }

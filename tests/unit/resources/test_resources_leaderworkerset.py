"""Golden assertions on the LeaderWorkerSet of a multi-node LLMDeployment.

Expected shapes: LeaderWorkerSet v0.8.0's vLLM example (docs/examples/vllm/GPU/lws.yaml) serves
Llama-3.1-405B with a group of size 2, 8 GPUs per pod, the leader running vLLM's
multi-node-serving.sh `leader --ray_cluster_size=$LWS_GROUP_SIZE` then the API server with
`--tensor-parallel-size 8 --pipeline-parallel-size 2`, the worker `worker
--ray_address=$LWS_LEADER_ADDRESS`, RecreateGroupOnPodRestart, and a Service selecting leaders.
"""

from __future__ import annotations

from typing import Any

import pytest

from llmscale.api import LLMDeployment
from llmscale.resources import build_service, evaluate_fit, owner_reference, resolve_serving
from llmscale.resources.leaderworkerset import (
    build_leader_worker_set,
    deployment_view,
    leader_selector_string,
    lws_name,
)

OWNER = owner_reference("llmscale.dev/v1alpha1", "LLMDeployment", "big", "uid-1")


def resource(**spec: Any) -> LLMDeployment:
    body = {
        "model": {"name": "meta-llama/Llama-3.1-405B-Instruct", "servedName": "big"},
        "resources": {"gpu": {"product": "H100-80GB"}},
        "engine": {"maxModelLen": 8192},
        "podLabels": {"team": "a"},
        **spec,
    }
    return LLMDeployment.model_validate(
        {"metadata": {"name": "big", "namespace": "team-a", "uid": "uid-1"}, "spec": body}
    )


def built(replicas: int | None = 2, **spec: Any) -> dict[str, Any]:
    res = resource(**spec)
    serving = resolve_serving(res.spec, evaluate_fit(res.spec).plan)
    return build_leader_worker_set(res, serving, OWNER, replicas)


def test_group_is_two_nodes_of_eight_gpus() -> None:
    lws = built()
    assert (lws["apiVersion"], lws["kind"]) == ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
    spec = lws["spec"]
    assert spec["replicas"] == 2  # groups
    template = spec["leaderWorkerTemplate"]
    assert template["size"] == 2
    assert template["restartPolicy"] == "RecreateGroupOnPodRestart"
    for role in ("leaderTemplate", "workerTemplate"):
        container = template[role]["spec"]["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
        assert container["resources"]["requests"]["nvidia.com/gpu"] == "8"
        affinity = template[role]["spec"]["affinity"]
        terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ]
        assert terms[0]["matchExpressions"][-1]["values"] == ["NVIDIA-H100-80GB-HBM3"]
        anti = affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
        assert anti["topologyKey"] == "kubernetes.io/hostname"
        assert anti["matchLabelKeys"] == ["leaderworkerset.sigs.k8s.io/group-key"]
    assert lws["metadata"]["ownerReferences"] == [OWNER]
    # not the LLMDeployment's name: LWS makes a headless Service of its own name
    assert lws["metadata"]["name"] == "big-lws"
    assert lws["metadata"]["labels"]["llmscale.dev/deployment"] == "big"


def test_long_names_stay_dns_labels() -> None:
    long = "a" * 63
    name = lws_name(long)
    assert len(name) == 63 and name.endswith("-lws") and name != lws_name("a" * 62)


def test_leader_runs_the_ray_head_then_vllm_with_both_parallel_sizes() -> None:
    leader = built()["spec"]["leaderWorkerTemplate"]["leaderTemplate"]
    container = leader["spec"]["containers"][0]
    command, args = container["command"], container["args"]
    assert command[:2] == ["/bin/bash", "-c"]
    assert "multi-node-serving.sh leader" in command[2] and "$LWS_GROUP_SIZE" in command[2]
    assert command[3] == "vllm" and args[:2] == ["serve", "meta-llama/Llama-3.1-405B-Instruct"]
    flags = dict(zip(args[2::2], args[3::2], strict=False))
    assert flags["--tensor-parallel-size"] == "8"
    assert flags["--pipeline-parallel-size"] == "2"
    assert args[-2:] == ["--distributed-executor-backend", "ray"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert leader["metadata"]["labels"]["llmscale.dev/role"] == "leader"
    assert leader["metadata"]["labels"]["team"] == "a"
    assert leader["metadata"]["annotations"]["prometheus.io/scrape"] == "true"


def test_worker_joins_the_leader_and_serves_nothing() -> None:
    worker = built()["spec"]["leaderWorkerTemplate"]["workerTemplate"]
    container = worker["spec"]["containers"][0]
    assert "multi-node-serving.sh worker" in container["command"][2]
    assert "$LWS_LEADER_ADDRESS" in container["command"][2]
    assert container["args"] == [] and container["ports"] == []
    assert not {"readinessProbe", "startupProbe", "livenessProbe"} & set(container)
    assert worker["metadata"]["labels"]["llmscale.dev/role"] == "worker"
    assert "prometheus.io/scrape" not in worker["metadata"]["annotations"]
    # the same volumes as a single-node pod: a memory-backed /dev/shm for NCCL
    assert any(v.get("emptyDir", {}).get("medium") == "Memory" for v in worker["spec"]["volumes"])


def test_replicas_left_out_when_another_manager_owns_them() -> None:
    assert "replicas" not in built(replicas=None)["spec"]


def test_single_node_plan_is_not_a_group() -> None:
    res = resource(model={"name": "meta-llama/Llama-3.1-8B-Instruct"})
    serving = resolve_serving(res.spec, evaluate_fit(res.spec).plan)
    assert not serving.multi_node
    with pytest.raises(ValueError, match="single-node"):
        build_leader_worker_set(res, serving, OWNER, 1)


def test_service_selects_leaders_only() -> None:
    service = build_service(resource(), OWNER, leaders_only=True)
    assert service["spec"]["selector"]["llmscale.dev/role"] == "leader"
    assert leader_selector_string("big") == (
        "app.kubernetes.io/name=vllm,llmscale.dev/deployment=big,llmscale.dev/role=leader"
    )


def test_status_view_counts_groups() -> None:
    lws = built()
    lws["metadata"]["generation"] = 3
    lws["status"] = {"readyReplicas": 1, "updatedReplicas": 2}
    view = deployment_view(lws)
    assert view["status"] == {
        "readyReplicas": 1,
        "updatedReplicas": 2,
        "observedGeneration": 3,
        "replicas": 0,
    }


def test_max_nodes_one_refuses_the_405b() -> None:
    verdict = evaluate_fit(
        resource(resources={"gpu": {"product": "H100-80GB"}, "maxNodesPerReplica": 1}).spec
    )
    assert verdict.status == "False" and "at most 1 node" in verdict.message


def test_each_pods_host_memory_is_sized_from_its_stage_not_the_whole_model() -> None:
    # 405B bf16 is ~756 GiB of weights; each of the 2 nodes loads about half of them
    container = built()["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]
    memory_gib = int(container["resources"]["requests"]["memory"].removesuffix("Gi"))
    assert 756 / 2 < memory_gib < 756

"""reconcile() against an in-memory cluster: children, status, conditions, events, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmscale.controller.reconcile import RetryLater, SpecRejected, reconcile
from llmscale.controller.reconcile_queue import ReconcileQueue

NS = "team-a"


def llmdep(cluster: Any, name: str = "llama", generation: int = 1, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": "llmscale.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": generation},
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
            "resources": {"gpu": {"product": "H100-80GB"}},
            "engine": {"maxModelLen": 8192},
            "scaling": {"strategy": "Warm", "replicas": 2},
            **spec,
        },
    }
    return cluster.add(body)  # type: ignore[no-any-return]


def update_spec(cluster: Any, generation: int, name: str = "llama", **spec: Any) -> dict[str, Any]:
    stored = cluster.objects[("llmscale.dev/v1alpha1", "LLMDeployment", NS, name)]
    stored["spec"].update(spec)
    stored["metadata"]["generation"] = generation
    return cluster.get("llmscale.dev/v1alpha1", "LLMDeployment", NS, name)  # type: ignore[no-any-return]


def conditions(cluster: Any, name: str = "llama") -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in cluster.status(NS, name).get("conditions", [])}


def test_create_applies_children_and_writes_status(cluster: Any, events: Any) -> None:
    body = llmdep(cluster)
    result = reconcile(body, cluster, events)
    assert result.desired_replicas == 2
    deployment = cluster.deployment(NS, "llama")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["ownerReferences"][0]["uid"] == "uid-llama"
    assert ("v1", "Service", NS, "llama") in cluster.objects
    assert ("policy/v1", "PodDisruptionBudget", NS, "llama") in cluster.objects
    assert ("monitoring.coreos.com/v1", "PodMonitor", NS, "llama") not in cluster.objects
    status = cluster.status(NS, "llama")
    assert status["desiredReplicas"] == 2
    assert status["strategy"] == "Warm"
    assert status["endpoint"] == "http://llama.team-a.svc:8000/v1"
    assert status["observedGeneration"] == 1
    assert status["selector"] == "app.kubernetes.io/name=vllm,llmscale.dev/deployment=llama"
    assert status["plan"]["fits"] is True and status["plan"]["tensorParallelSize"] == 1
    found = conditions(cluster)
    assert (found["ModelFits"]["status"], found["ModelFits"]["reason"]) == ("True", "ModelFits")
    assert (found["Ready"]["status"], found["Ready"]["reason"]) == ("False", "ReplicasStarting")
    assert (found["ScalingActive"]["status"], found["ScalingActive"]["reason"]) == ("False", "FixedReplicas")
    assert events.reasons() == ["Created", "ModelFits", "ReplicasStarting"]


def test_ready_when_the_deployment_is_rolled_out(cluster: Any, events: Any) -> None:
    reconcile(llmdep(cluster), cluster, events)
    first = conditions(cluster)["Ready"]["lastTransitionTime"]
    cluster.set_deployment_status(NS, "llama", replicas=2, readyReplicas=2, updatedReplicas=2)
    reconcile(cluster.get("llmscale.dev/v1alpha1", "LLMDeployment", NS, "llama"), cluster, events)
    ready = conditions(cluster)["Ready"]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "True",
        "ReplicasReady",
        "2/2 replicas ready",
    )
    assert cluster.status(NS, "llama")["readyReplicas"] == 2
    assert events.reasons()[-1] == "ReplicasReady"
    # unchanged status keeps its transition time; no new Event
    before = len(events.events)
    reconcile(cluster.get("llmscale.dev/v1alpha1", "LLMDeployment", NS, "llama"), cluster, events)
    assert conditions(cluster)["Ready"]["lastTransitionTime"] == ready["lastTransitionTime"]
    assert len(events.events) == before
    assert first  # set on the first write


def test_unschedulable_pod_is_the_ready_reason(cluster: Any, events: Any) -> None:
    reconcile(llmdep(cluster), cluster, events)
    cluster.add(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "llama-abc",
                "namespace": NS,
                "labels": {"app.kubernetes.io/name": "vllm", "llmscale.dev/deployment": "llama"},
            },
            "status": {
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/5 nodes are available: 5 Insufficient nvidia.com/gpu.",
                    }
                ]
            },
        }
    )
    reconcile(cluster.get("llmscale.dev/v1alpha1", "LLMDeployment", NS, "llama"), cluster, events)
    ready = conditions(cluster)["Ready"]
    assert ready["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in ready["message"]


def test_model_that_does_not_fit_creates_no_pods(cluster: Any, events: Any) -> None:
    body = llmdep(
        cluster,
        model={"name": "meta-llama/Llama-3.1-405B-Instruct"},
        resources={"gpu": {"product": "L4", "count": 1}},
    )
    with pytest.raises(SpecRejected, match="ModelDoesNotFit"):
        reconcile(body, cluster, events)
    assert ("apps/v1", "Deployment", NS, "llama") not in cluster.objects
    found = conditions(cluster)
    assert (found["ModelFits"]["status"], found["Ready"]["status"]) == ("False", "False")
    assert found["Ready"]["reason"] == "ModelDoesNotFit"
    assert "GiB" in found["Ready"]["message"] and "no pods are created" in found["Ready"]["message"]
    assert cluster.status(NS, "llama")["plan"]["fits"] is False
    assert ("Warning", "ModelDoesNotFit") in [(t, r) for t, r, _ in events.events]


def test_context_longer_than_the_model_names_the_field(cluster: Any, events: Any) -> None:
    body = llmdep(cluster, engine={"maxModelLen": 1_000_000})
    with pytest.raises(SpecRejected):
        reconcile(body, cluster, events)
    fits = conditions(cluster)["ModelFits"]
    assert fits["reason"] == "ContextTooLong"
    assert fits["message"].startswith("spec.engine.maxModelLen: value 1000000 exceeds")


def test_unknown_model_is_served_with_fit_unknown(cluster: Any, events: Any) -> None:
    body = llmdep(
        cluster, model={"name": "example/in-house"}, resources={"gpu": {"product": "L4", "count": 2}}
    )
    result = reconcile(body, cluster, events)
    assert result.model_fits.status == "Unknown"
    args = cluster.deployment(NS, "llama")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2"
    assert "plan" not in cluster.status(NS, "llama")
    assert ("Normal", "UnknownModel") in [(t, r) for t, r, _ in events.events]


def test_architecture_from_a_config_map(cluster: Any, events: Any) -> None:
    body = llmdep(cluster, model={"name": "example/in-house", "architectureConfigMap": {"name": "arch"}})
    with pytest.raises(RetryLater) as caught:
        reconcile(body, cluster, events)
    assert caught.value.delay == 30.0
    assert conditions(cluster)["Ready"]["reason"] == "ArchitectureConfigMapNotFound"
    config = (
        '{"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,'
        ' "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,'
        ' "max_position_embeddings": 8192,'
        ' "torch_dtype": "bfloat16", "architectures": ["LlamaForCausalLM"]}'
    )
    cluster.add(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "arch", "namespace": NS},
            "data": {"config.json": config},
        }
    )
    result = reconcile(cluster.get("llmscale.dev/v1alpha1", "LLMDeployment", NS, "llama"), cluster, events)
    assert result.model_fits.status == "True"
    assert cluster.status(NS, "llama")["plan"]["fits"] is True


def test_rejected_child_holds_with_the_api_message(cluster: Any, events: Any) -> None:
    cluster.reject_kinds.add("Deployment")
    with pytest.raises(SpecRejected, match="HTTP 422"):
        reconcile(llmdep(cluster), cluster, events)
    assert conditions(cluster)["Ready"]["reason"] == "ChildRejected"


def test_pdb_only_above_one_replica_and_pod_monitor_only_when_served(cluster: Any, events: Any) -> None:
    cluster.served_apis.add(("monitoring.coreos.com/v1", "podmonitors"))
    reconcile(llmdep(cluster), cluster, events)
    assert ("policy/v1", "PodDisruptionBudget", NS, "llama") in cluster.objects
    assert ("monitoring.coreos.com/v1", "PodMonitor", NS, "llama") in cluster.objects
    reconcile(update_spec(cluster, 2, scaling={"strategy": "Warm", "replicas": 1}), cluster, events)
    assert ("policy/v1", "PodDisruptionBudget", NS, "llama") not in cluster.objects
    assert cluster.deployment(NS, "llama")["spec"]["replicas"] == 1
    assert events.reasons().count("Created") == 1 and "Updated" in events.reasons()
    assert cluster.status(NS, "llama")["observedGeneration"] == 2


def test_loop_owned_replicas_follow_status_not_spec(cluster: Any, events: Any) -> None:
    body = llmdep(cluster, scaling={"strategy": "Autoscaled", "minReplicas": 1, "maxReplicas": 5})
    reconcile(body, cluster, events)
    assert cluster.deployment(NS, "llama")["spec"]["replicas"] == 1
    assert cluster.status(NS, "llama")["desiredReplicas"] == 1
    assert conditions(cluster)["ScalingActive"]["reason"] == "AwaitingScalingLoop"
    # the scaling loop decides 4 through the serialised path; the reconcile applies it and keeps it
    queue = ReconcileQueue(cluster, lambda _body: events, workers=1)
    asyncio.run(queue.scale_to(NS, "llama", 4))
    assert cluster.deployment(NS, "llama")["spec"]["replicas"] == 4
    reconcile(cluster.get("llmscale.dev/v1alpha1", "LLMDeployment", NS, "llama"), cluster, events)
    assert cluster.deployment(NS, "llama")["spec"]["replicas"] == 4
    assert cluster.status(NS, "llama")["desiredReplicas"] == 4
    # clamped to maxReplicas
    asyncio.run(queue.scale_to(NS, "llama", 9))
    assert cluster.deployment(NS, "llama")["spec"]["replicas"] == 5
    assert asyncio.run(queue.scale_to(NS, "gone", 2)) is None
    queue.close()


def test_scale_to_zero_is_ready_by_design(cluster: Any, events: Any) -> None:
    body = llmdep(cluster, scaling={"strategy": "ScaleToZero", "maxReplicas": 2})
    result = reconcile(body, cluster, events)
    assert result.desired_replicas == 0
    assert cluster.deployment(NS, "llama")["spec"]["replicas"] == 0
    assert (result.ready.status, result.ready.reason) == ("True", "ScaledToZero")
    assert cluster.status(NS, "llama")["strategy"] == "ScaleToZero"


def test_auto_keeps_the_loops_strategy(cluster: Any, events: Any) -> None:
    body = llmdep(cluster, scaling={"strategy": "Auto"})
    reconcile(body, cluster, events)
    assert cluster.status(NS, "llama")["strategy"] == "Autoscaled"
    cluster.objects[("llmscale.dev/v1alpha1", "LLMDeployment", NS, "llama")]["status"]["strategy"] = (
        "ScaleToZero"
    )
    reconcile(cluster.get("llmscale.dev/v1alpha1", "LLMDeployment", NS, "llama"), cluster, events)
    assert cluster.status(NS, "llama")["strategy"] == "ScaleToZero"


def test_status_write_retries_on_conflict_and_keeps_other_writers_conditions(
    cluster: Any, events: Any
) -> None:
    body = llmdep(cluster)
    obj = cluster.objects[("llmscale.dev/v1alpha1", "LLMDeployment", NS, "llama")]
    obj["status"] = {
        "conditions": [
            {"type": "MetricsAvailable", "status": "False", "reason": "PrometheusDown", "message": "x"}
        ],
        "scalerState": {"kept": True},
    }
    cluster.conflicts_left = 2
    reconcile(body, cluster, events)
    status = cluster.status(NS, "llama")
    assert status["scalerState"] == {"kept": True}
    assert [c["type"] for c in status["conditions"]] == [
        "Ready",
        "ModelFits",
        "MetricsAvailable",
        "ScalingActive",
    ]


def test_invalid_body_is_rejected_with_the_field(cluster: Any, events: Any) -> None:
    body = llmdep(cluster, scaling={"strategy": "Sometimes"})
    with pytest.raises(SpecRejected, match=r"spec\.scaling\.strategy"):
        reconcile(body, cluster, events)


def test_a_refused_pod_monitor_does_not_block_serving(cluster: Any, events: Any) -> None:
    cluster.served_apis.add(("monitoring.coreos.com/v1", "podmonitors"))
    cluster.reject_kinds.add("PodMonitor")
    result = reconcile(llmdep(cluster), cluster, events)
    assert result.ready.reason == "ReplicasStarting"
    assert ("apps/v1", "Deployment", NS, "llama") in cluster.objects


def test_an_unchanged_status_is_not_written_again(cluster: Any, events: Any) -> None:
    reconcile(llmdep(cluster), cluster, events)
    writes = cluster.calls.count(("patch_status", "LLMDeployment"))
    reconcile(cluster.get("llmscale.dev/v1alpha1", "LLMDeployment", NS, "llama"), cluster, events)
    assert cluster.calls.count(("patch_status", "LLMDeployment")) == writes

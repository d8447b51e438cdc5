"""reconcile() of a multi-node LLMDeployment against an in-memory cluster: LeaderWorkerSet or a
clear Ready=False when its CRD is absent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmscale.controller.reconcile import RetryLater, reconcile
from llmscale.controller.reconcile_queue import ReconcileQueue

NS = "team-a"
LWS = ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")
BIG = {"name": "meta-llama/Llama-3.1-405B-Instruct"}


def llmdep(cluster: Any, model: dict[str, Any] | None = None, generation: int = 1) -> dict[str, Any]:
    body = {
        "apiVersion": "llmscale.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": "big", "namespace": NS, "uid": "uid-big", "generation": generation},
        "spec": {
            "model": model or BIG,
            "resources": {"gpu": {"product": "H100-80GB"}},
            "engine": {"maxModelLen": 8192},
            "scaling": {"strategy": "Warm", "replicas": 1},
        },
    }
    return cluster.add(body)  # type: ignore[no-any-return]


def ready(cluster: Any) -> dict[str, Any]:
    conditions = cluster.status(NS, "big").get("conditions", [])
    return next(c for c in conditions if c["type"] == "Ready")


@pytest.fixture
def lws_cluster(cluster: Any) -> Any:
    cluster.served_apis.add(("leaderworkerset.x-k8s.io/v1", "leaderworkersets"))
    return cluster


def test_405b_becomes_a_leader_worker_set_not_a_deployment(lws_cluster: Any, events: Any) -> None:
    reconcile(llmdep(lws_cluster), lws_cluster, events)
    lws = lws_cluster.objects[(*LWS, NS, "big-lws")]
    assert lws["spec"]["replicas"] == 1 and lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    assert ("apps/v1", "Deployment", NS, "big") not in lws_cluster.objects
    service = lws_cluster.objects[("v1", "Service", NS, "big")]
    assert service["spec"]["selector"]["llmscale.dev/role"] == "leader"
    status = lws_cluster.status(NS, "big")
    assert status["nodesPerReplica"] == 2
    assert status["plan"]["nodesPerReplica"] == 2 and status["plan"]["gpus"] == 16
    assert status["selector"].endswith("llmscale.dev/role=leader")
    assert ready(lws_cluster)["reason"] == "ReplicasStarting"
    assert any("LeaderWorkerSet (2 nodes per replica)" in m for _, _, m in events.events)


def test_ready_when_the_groups_are_ready(lws_cluster: Any, events: Any) -> None:
    body = llmdep(lws_cluster)
    reconcile(body, lws_cluster, events)
    lws_cluster.objects[(*LWS, NS, "big-lws")]["status"] = {
        "replicas": 1,
        "readyReplicas": 1,
        "updatedReplicas": 1,
    }
    reconcile(lws_cluster.get("llmscale.dev/v1alpha1", "LLMDeployment", NS, "big"), lws_cluster, events)
    assert (ready(lws_cluster)["status"], ready(lws_cluster)["reason"]) == ("True", "ReplicasReady")
    assert lws_cluster.status(NS, "big")["readyReplicas"] == 1


def test_scale_counts_groups_and_reaches_zero(lws_cluster: Any, events: Any) -> None:
    reconcile(llmdep(lws_cluster), lws_cluster, events)
    lws_cluster.objects[("llmscale.dev/v1alpha1", "LLMDeployment", NS, "big")]["spec"]["scaling"] = {
        "strategy": "Autoscaled",
        "minReplicas": 0,
        "maxReplicas": 3,
    }
    queue = ReconcileQueue(lws_cluster, lambda _body: events)  # the loop's serialised apply
    asyncio.run(queue.scale_to(NS, "big", 2))
    assert lws_cluster.objects[(*LWS, NS, "big-lws")]["spec"]["replicas"] == 2
    asyncio.run(queue.scale_to(NS, "big", 0))
    assert lws_cluster.objects[(*LWS, NS, "big-lws")]["spec"]["replicas"] == 0
    assert ready(lws_cluster)["reason"] == "ScaledToZero"


def test_without_the_crd_ready_false_says_what_to_install(cluster: Any, events: Any) -> None:
    with pytest.raises(RetryLater) as raised:
        reconcile(llmdep(cluster), cluster, events)
    assert raised.value.delay > 0
    condition = ready(cluster)
    assert (condition["status"], condition["reason"]) == ("False", "LeaderWorkerSetNotInstalled")
    assert "install LeaderWorkerSet (sigs.k8s.io/lws" in condition["message"]
    assert "2 nodes" in condition["message"]
    assert not any(kind in ("Deployment", "LeaderWorkerSet") for _, kind, _, _ in cluster.objects)
    assert cluster.status(NS, "big")["plan"]["nodesPerReplica"] == 2


def test_growing_past_one_node_replaces_the_deployment(lws_cluster: Any, events: Any) -> None:
    reconcile(llmdep(lws_cluster, model={"name": "meta-llama/Llama-3.1-8B-Instruct"}), lws_cluster, events)
    assert ("apps/v1", "Deployment", NS, "big") in lws_cluster.objects
    stored = lws_cluster.objects[("llmscale.dev/v1alpha1", "LLMDeployment", NS, "big")]
    stored["spec"]["model"] = BIG
    stored["metadata"]["generation"] = 2
    reconcile(lws_cluster.get("llmscale.dev/v1alpha1", "LLMDeployment", NS, "big"), lws_cluster, events)
    assert ("apps/v1", "Deployment", NS, "big") not in lws_cluster.objects
    assert (*LWS, NS, "big-lws") in lws_cluster.objects
    assert lws_cluster.status(NS, "big")["nodesPerReplica"] == 2

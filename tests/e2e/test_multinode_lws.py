"""Models larger than one node on the local cluster: a real LeaderWorkerSet controller.

Llama-3.1-405B in bf16 on H100-80GB needs two 8-GPU nodes per replica (llmscale plan; vLLM's
docs and LWS's own vLLM example use the same layout). The operator renders a LeaderWorkerSet,
the LWS controller (sigs.k8s.io/lws, started by `cluster up`) creates the leader and the worker
pods, KWOK runs them on the fake H100 nodes and the pod runner serves the leader with the vLLM
emulator. The last test removes the LWS CRD (and puts it back) to see the operator without it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest
from kubernetes.client.exceptions import ApiException

from llmscale_tools.demo.stack import Stack, emulated_llmdeployment

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

GROUP, VERSION, PLURAL = "llmscale.dev", "v1alpha1", "llmdeployments"
LWS = ("leaderworkerset.x-k8s.io", "v1", "leaderworkersets")
MODEL = "meta-llama/Llama-3.1-405B-Instruct"
FAST = {
    "idle_window_seconds": 8.0,
    "scale_down_delay_seconds": 8.0,
    "stable_window_seconds": 8.0,
    "cold_start_seconds": 5.0,
}


@pytest.fixture
def stack(cluster: Any, namespace: str) -> Iterator[Stack]:
    if cluster.local is None:
        pytest.skip("needs the local cluster's LWS controller, fake H100 nodes and pod runner")
    stack = Stack.on_local_cluster(cluster.local, namespace)
    try:
        stack.start_operator(interval_seconds=1.0)
        stack.start_gateway(hold_timeout_seconds=120.0, queue_size=8)
        yield stack
    finally:
        stack.stop_all()
        log = stack.log_dir / "operator.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        assert "Traceback" not in text, text[-4000:]


def big_model(name: str, namespace: str, **kwargs: Any) -> dict[str, Any]:
    body = emulated_llmdeployment(name, namespace, gpu="H100-80GB", **kwargs)
    body["spec"]["model"] = {"name": MODEL, "servedName": name}
    del body["spec"]["resources"]["gpu"]["count"]  # the planner chooses: 8 GPUs on each of 2 nodes
    return body


def status(custom_objects: Any, namespace: str, name: str) -> dict[str, Any]:
    obj = custom_objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return dict(obj.get("status") or {})


def ready_condition(custom_objects: Any, namespace: str, name: str) -> dict[str, Any]:
    conditions = status(custom_objects, namespace, name).get("conditions") or ()
    return next((c for c in conditions if c["type"] == "Ready"), {})


def leader_worker_set(custom_objects: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """The LeaderWorkerSet of LLMDeployment `name` (named `<name>-lws`: LWS's own headless
    Service takes its name, and the serving Service already has the LLMDeployment's)."""
    try:
        return dict(
            custom_objects.get_namespaced_custom_object(LWS[0], LWS[1], namespace, LWS[2], f"{name}-lws")
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def group_pods(core_v1: Any, namespace: str, name: str, *, ready_only: bool = True) -> list[Any]:
    pods = core_v1.list_namespaced_pod(namespace, label_selector=f"llmscale.dev/deployment={name}").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and (
            not ready_only
            or any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or ()))
        )
    ]


async def complete(url: str, model: str) -> int:
    body = {"model": model, "prompt": "hello", "max_tokens": 4, "llmscale_prompt_tokens": 32}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=150)) as session,
        session.post(f"{url}/v1/completions", json=body) as response,
    ):
        await response.read()
        return response.status


def assert_groups(pods: list[Any], groups: int) -> None:
    """`groups` groups of one leader and one worker, 8 GPUs each, every pod on its own node."""
    roles = sorted(p.metadata.labels["llmscale.dev/role"] for p in pods)
    assert roles == ["leader"] * groups + ["worker"] * groups, roles
    nodes = [p.spec.node_name for p in pods]
    assert len(set(nodes)) == len(nodes) == 2 * groups, nodes
    assert all(node.startswith("gpu-h100-") for node in nodes), nodes
    for pod in pods:
        resources = pod.spec.containers[0].resources
        assert resources.limits["nvidia.com/gpu"] == "8" and resources.requests["nvidia.com/gpu"] == "8"
    by_group: dict[str, list[Any]] = {}
    for pod in pods:
        by_group.setdefault(pod.metadata.labels["leaderworkerset.sigs.k8s.io/group-index"], []).append(pod)
    assert len(by_group) == groups and all(len(members) == 2 for members in by_group.values())


def test_405b_becomes_a_group_of_two_nodes_scales_by_groups_and_is_deleted_whole(
    stack: Stack,
    namespace: str,
    custom_objects: Any,
    core_v1: Any,
    kubectl: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    name = "big"
    custom_objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, big_model(name, namespace, strategy="Warm", replicas=1)
    )
    lws = wait_for(lambda: leader_worker_set(custom_objects, namespace, name), 60, "the LeaderWorkerSet")
    assert lws["spec"]["replicas"] == 1 and lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    args = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "8"
    assert args[args.index("--pipeline-parallel-size") + 1] == "2"
    assert kubectl("get", "deployment", name, "-n", namespace, check=False).returncode != 0

    def ready_pods(count: int) -> list[Any] | None:
        pods = group_pods(core_v1, namespace, name)
        return pods if len(pods) == count else None

    pods = wait_for(lambda: ready_pods(2), 120, "leader and worker Ready")
    assert_groups(pods, 1)
    leader = next(p for p in pods if p.metadata.labels["llmscale.dev/role"] == "leader")
    assert leader.metadata.labels["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
    assert leader.spec.containers[0].readiness_probe.http_get.path == "/health"
    env = {e.name for e in leader.spec.containers[0].env or ()}
    assert {"LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE"} <= env  # injected by the LWS pod webhook

    try:
        wait_for(
            lambda: ready_condition(custom_objects, namespace, name).get("status") == "True", 90, "Ready=True"
        )
    except BaseException:
        lws_status = (leader_worker_set(custom_objects, namespace, name) or {}).get("status")
        print("Ready:", ready_condition(custom_objects, namespace, name), "LWS status:", lws_status)
        raise
    current = status(custom_objects, namespace, name)
    assert current["nodesPerReplica"] == 2 and current["readyReplicas"] == 1
    assert current["plan"]["gpus"] == 16 and current["plan"]["pipelineParallelSize"] == 2
    assert current["selector"].endswith("llmscale.dev/role=leader")
    endpoints = wait_for(
        lambda: core_v1.read_namespaced_service(name, namespace).spec.selector, 10, "the Service selector"
    )
    assert endpoints["llmscale.dev/role"] == "leader"
    assert asyncio.run(complete(stack.gateway_url, name)) == 200

    # two replicas = two groups of two nodes each
    kubectl("scale", "llmdep", name, "-n", namespace, "--replicas=2")
    pods = wait_for(lambda: ready_pods(4), 120, "two groups Ready")
    assert_groups(pods, 2)
    assert leader_worker_set(custom_objects, namespace, name)["spec"]["replicas"] == 2  # type: ignore[index]
    wait_for(lambda: status(custom_objects, namespace, name).get("readyReplicas") == 2, 60, "readyReplicas 2")

    # deleting the LLMDeployment removes the LeaderWorkerSet, its StatefulSets and every pod
    custom_objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    wait_for(
        lambda: leader_worker_set(custom_objects, namespace, name) is None, 60, "LeaderWorkerSet deleted"
    )
    wait_for(lambda: not group_pods(core_v1, namespace, name, ready_only=False), 90, "all group pods deleted")


def test_a_group_scales_to_zero_and_a_held_request_wakes_it(
    stack: Stack,
    namespace: str,
    custom_objects: Any,
    core_v1: Any,
    wait_for: Callable[..., Any],
    report_figure: Callable[[str], None],
) -> None:
    name = "bigzero"
    custom_objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        big_model(name, namespace, strategy="ScaleToZero", max_replicas=1, scaling_overrides=FAST),
    )

    def lws_replicas() -> int | None:
        lws = leader_worker_set(custom_objects, namespace, name)
        return None if lws is None else int(lws["spec"].get("replicas", 1))

    wait_for(lambda: lws_replicas() == 0, 60, "the LeaderWorkerSet created at zero groups")
    wait_for(lambda: ready_condition(custom_objects, namespace, name).get("reason") == "ScaledToZero", 30,
             "Ready ScaledToZero")  # fmt: skip
    started = time.monotonic()
    assert asyncio.run(complete(stack.gateway_url, name)) == 200  # held while the group starts
    woke_in = time.monotonic() - started
    assert lws_replicas() == 1
    # the leader answered; the worker's readiness may land a moment later
    wait_for(lambda: len(group_pods(core_v1, namespace, name)) == 2, 30, "leader and worker Ready")
    wait_for(
        lambda: status(custom_objects, namespace, name).get("nodesPerReplica") == 2, 30, "nodesPerReplica"
    )
    # idle: back to zero groups, no pod left
    wait_for(lambda: lws_replicas() == 0, 120, "scale to zero after the idle window")
    wait_for(lambda: not group_pods(core_v1, namespace, name, ready_only=False), 90, "group pods gone")
    cost = status(custom_objects, namespace, name).get("cost") or {}
    assert cost.get("gpuHours", 0) > 0, cost
    report_figure(f"LWS: woke a 2-node group in {woke_in:.1f} s")


def test_without_the_lws_crd_ready_false_says_what_to_install(
    cluster: Any,
    namespace: str,
    custom_objects: Any,
    kubectl: Callable[..., Any],
    wait_for: Callable[..., Any],
) -> None:
    if cluster.local is None:
        pytest.skip("removes and restores the local cluster's LeaderWorkerSet CRD")
    kubectl("delete", "crd", "leaderworkersets.leaderworkerset.x-k8s.io", "--wait=true", timeout=120)
    stack = Stack.on_local_cluster(cluster.local, namespace)
    try:
        operator = stack.start_operator(interval_seconds=1.0)
        name = "nolws"
        custom_objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, big_model(name, namespace, strategy="Warm", replicas=1)
        )
        condition = wait_for(
            lambda: (
                (c := ready_condition(custom_objects, namespace, name)).get("reason")
                == "LeaderWorkerSetNotInstalled"
                and c
            ),
            60,
            "Ready=False LeaderWorkerSetNotInstalled",
        )
        assert condition["status"] == "False"
        assert "install LeaderWorkerSet (sigs.k8s.io/lws" in condition["message"]
        assert "2 nodes" in condition["message"]
        assert status(custom_objects, namespace, name)["plan"]["nodesPerReplica"] == 2
        assert kubectl("get", "deployment", name, "-n", namespace, check=False).returncode != 0
        time.sleep(3)
        assert operator.poll() is None, "the operator exited"
    finally:
        stack.stop_all()
        cluster.local.install_leader_worker_set_crd()
    log = (stack.log_dir / "operator.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]

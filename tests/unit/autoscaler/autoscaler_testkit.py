"""Fakes for the scaling loop's unit tests: an in-memory cluster and a stepped clock."""

from __future__ import annotations

from typing import Any

from llmscale.controller.autoscaling.gather import WorkloadSnapshot
from llmscale.metrics import DeploymentKey


class FakeCluster:
    def __init__(self) -> None:
        self.workloads: dict[DeploymentKey, WorkloadSnapshot] = {}
        self.scale_calls: list[tuple[str, str, int]] = []
        self.list_calls = 0
        self.status: dict[DeploymentKey, dict[str, Any]] = {}
        self.conditions: dict[DeploymentKey, dict[str, dict[str, Any]]] = {}
        self.events: list[tuple[str, str, str, str]] = []
        self.deletion_cost_calls: list[str] = []
        self.fail_list = False

    def set_workload(self, namespace: str, name: str, replicas: int, ready: int | None = None) -> None:
        self.workloads[(namespace, name)] = WorkloadSnapshot(replicas, replicas if ready is None else ready)

    async def list_workloads(self) -> dict[DeploymentKey, WorkloadSnapshot]:
        self.list_calls += 1
        return dict(self.workloads)

    async def get_replicas(self, namespace: str, name: str) -> int | None:
        workload = self.workloads.get((namespace, name))
        return None if workload is None else workload.replicas

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        self.scale_calls.append((namespace, name, replicas))
        old = self.workloads.get((namespace, name), WorkloadSnapshot(0, 0))
        # new pods are not Ready yet; removed ones go at once
        self.workloads[(namespace, name)] = WorkloadSnapshot(replicas, min(old.ready_replicas, replicas))

    async def wake(self, namespace: str, name: str, replicas: int) -> None:
        await self.scale(namespace, name, replicas)

    async def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], conditions: list[dict[str, Any]] | None
    ) -> None:
        self.status.setdefault((namespace, name), {}).update(status)
        for condition in conditions or ():
            self.conditions.setdefault((namespace, name), {})[condition["type"]] = condition

    async def post_event(
        self, namespace: str, name: str, uid: str | None, type_: str, reason: str, message: str
    ) -> None:
        self.events.append((name, type_, reason, message))

    async def set_deletion_costs(self, namespace: str, pods: tuple[dict[str, Any], ...]) -> None:
        self.deletion_cost_calls.append(namespace)


class Clock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def llmdeployment(
    name: str = "chat",
    namespace: str = "ns",
    strategy: str = "Autoscaled",
    mode: str = "Active",
    max_replicas: int = 8,
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "generation": 1,
            "annotations": annotations or {},
        },
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
            "resources": {"gpu": {"product": "H100-80GB"}},
            "scaling": {
                "strategy": strategy,
                "mode": mode,
                "maxReplicas": max_replicas,
                "slo": {"ttftP95": "1s"},
            },
        },
        "status": status or {},
    }

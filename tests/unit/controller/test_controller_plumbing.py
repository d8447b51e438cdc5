"""KubeApi error mapping and paths, the serialised reconcile queue, and the CLI without a cluster."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from llmscale.controller import reconcile_queue
from llmscale.controller.kube import ApiRejectedError, ConflictError, KubeApi, _path, _wrap
from llmscale.controller.reconcile_queue import ReconcileQueue
from llmscale.errors import TransientError


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (409, ConflictError),
        (422, ApiRejectedError),
        (403, ApiRejectedError),
        (500, TransientError),
        (429, TransientError),
    ],
)
def test_api_errors_map_onto_our_hierarchy(status: int, kind: type[Exception]) -> None:
    error = ApiException(status=status, reason="x")
    error.body = '{"message": "spec.template: Invalid value"}'
    wrapped = _wrap(error, "apply Deployment ns/a")
    assert type(wrapped) is kind
    assert str(wrapped) == f"apply Deployment ns/a: HTTP {status} x: spec.template: Invalid value"


def test_paths_of_managed_kinds() -> None:
    assert _path("apps/v1", "Deployment", "ns", "a") == "/apis/apps/v1/namespaces/ns/deployments/a"
    assert _path("v1", "Service", "ns") == "/api/v1/namespaces/ns/services"
    assert (
        _path("llmscale.dev/v1alpha1", "LLMDeployment", "ns", "a")
        == "/apis/llmscale.dev/v1alpha1/namespaces/ns/llmdeployments/a"
    )
    with pytest.raises(ApiRejectedError, match="not one llmscale manages"):
        _path("v1", "Secret", "ns", "a")


def test_own_apply_echoes_are_recognised() -> None:
    api = KubeApi.__new__(KubeApi)
    api._lock = threading.Lock()
    api._applied_versions = {("Deployment", "ns", "a"): "42"}
    assert api.is_own_apply("Deployment", "ns", "a", "42")
    assert not api.is_own_apply("Deployment", "ns", "a", "43")
    assert not api.is_own_apply("Service", "ns", "a", "42")
    assert not api.is_own_apply("Deployment", "ns", "a", None)


class SlowReconcileApi:
    """Counts reconciles and how many overlap; each holds its turn for `hold` seconds."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.running = 0
        self.most_at_once = 0
        self.reads = 0
        self.gate = threading.Lock()

    def get(self, *_key: str) -> dict[str, object]:
        self.reads += 1
        return {"metadata": {"namespace": "ns", "name": "a", "generation": self.reads}}


def queue_with(api: SlowReconcileApi, monkeypatch: pytest.MonkeyPatch) -> ReconcileQueue:
    def fake_reconcile(body: dict[str, object], *_args: object, **_kwargs: object) -> str:
        with api.gate:
            api.running += 1
            api.most_at_once = max(api.most_at_once, api.running)
        time.sleep(api.hold)
        with api.gate:
            api.running -= 1
        return f"generation {body['metadata']['generation']}"  # type: ignore[index]

    monkeypatch.setattr(reconcile_queue, "reconcile", fake_reconcile)
    return ReconcileQueue(api, lambda _body: None, workers=8)  # type: ignore[arg-type]


def test_reconciles_of_one_object_never_overlap_and_bursts_coalesce(monkeypatch: pytest.MonkeyPatch) -> None:
    api = SlowReconcileApi(hold=0.05)
    queue = queue_with(api, monkeypatch)

    async def burst() -> list[object]:
        # a handler's own reconcile, then ten child events while it runs
        own = asyncio.create_task(
            queue.reconcile_body({"metadata": {"namespace": "ns", "name": "a", "generation": 0}})
        )
        await asyncio.sleep(0.01)
        assert queue.busy("ns", "a")
        children = [asyncio.create_task(queue.reconcile_latest("ns", "a")) for _ in range(10)]
        return [await own, *[await c for c in children]]

    results = asyncio.run(burst())
    queue.close()
    assert api.most_at_once == 1
    # the handler's outcome is its own; the ten requests became ONE rerun that read the object fresh
    assert results[0] == "generation 0"
    reruns = [r for r in results[1:] if r is not None]
    assert reruns == ["generation 1"] and api.reads == 1


def test_other_objects_reconcile_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    api = SlowReconcileApi(hold=0.1)
    queue = queue_with(api, monkeypatch)

    async def two() -> None:
        await asyncio.gather(
            queue.reconcile_body({"metadata": {"namespace": "ns", "name": "a", "generation": 0}}),
            queue.reconcile_body({"metadata": {"namespace": "ns", "name": "b", "generation": 0}}),
        )

    asyncio.run(two())
    queue.close()
    assert api.most_at_once == 2


def test_operator_without_kubeconfig_is_one_line_and_status_1(tmp_path: Path) -> None:
    env = {"KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    completed = subprocess.run(
        [sys.executable, "-m", "llmscale", "operator"], env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 1
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmscale operator: error: no Kubernetes configuration")


def test_bad_scaling_flag_is_a_usage_error_before_any_cluster_access(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llmscale.cli import main

    monkeypatch.setenv("KUBECONFIG", "/nonexistent/kubeconfig")
    assert main(["operator", "--scaling-overrides", '{"bogus": 1}']) == 2
    err = capsys.readouterr().err
    assert "--scaling-overrides" in err and "'bogus'" in err and "Kubernetes configuration" not in err

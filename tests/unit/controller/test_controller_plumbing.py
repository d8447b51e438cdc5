"""KubeApi error mapping and paths, the reconcile coalescer, and the CLI without a cluster."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from llmscale.controller.handlers import _Coalescer
from llmscale.controller.kube import ApiRejectedError, ConflictError, KubeApi, _path, _wrap
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


def test_coalescer_runs_one_at_a_time_and_reruns_once() -> None:
    coalescer = _Coalescer()
    assert coalescer.enter("ns/a")
    assert not coalescer.enter("ns/a")  # requested meanwhile
    assert not coalescer.enter("ns/a")  # still one rerun, not two
    assert coalescer.enter("ns/b")  # other objects are independent
    assert coalescer.leave("ns/a")  # rerun: the caller keeps ownership
    assert not coalescer.enter("ns/a")
    assert coalescer.leave("ns/a")
    assert not coalescer.leave("ns/a")  # released
    assert coalescer.enter("ns/a")
    coalescer.release("ns/a")
    assert coalescer.enter("ns/a")


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

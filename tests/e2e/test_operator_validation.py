"""Invalid LLMDeployments are rejected by the API server with a message naming field and value.

No operator needed: the generated CRD's schema and CEL rules do the work.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "llmdeployments.llmscale.dev.yaml"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


@pytest.fixture(scope="session")
def crd_ready(kubectl: Callable[..., Any]) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=llmscale-e2e", "-f", str(CRD))
    kubectl("wait", "--for=condition=Established", "crd/llmdeployments.llmscale.dev", "--timeout=60s")


def body(name: str = "x", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
        "resources": {"gpu": {"product": "L4"}},
    }
    base.update(spec)
    return {
        "apiVersion": "llmscale.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": base,
    }


def apply(kubectl: Callable[..., Any], namespace: str, obj: dict[str, Any]) -> Any:
    return kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=json.dumps(obj), check=False
    )


INVALID: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "min>max",
        body(scaling={"minReplicas": 3, "maxReplicas": 2}),
        ["spec.scaling.minReplicas", "3 must not exceed maxReplicas (2)"],
    ),
    (
        "scale-to-zero-min",
        body(scaling={"strategy": "ScaleToZero", "minReplicas": 1}),
        ["spec.scaling.minReplicas", "1 must be 0 with strategy ScaleToZero"],
    ),
    (
        "warm-min-0",
        body(scaling={"strategy": "Warm", "minReplicas": 0}),
        ["spec.scaling.minReplicas", "0 must be at least 1 with strategy Warm"],
    ),
    (
        "replicas>max",
        body(scaling={"replicas": 9, "maxReplicas": 4}),
        ["spec.scaling.replicas", "9 must not exceed maxReplicas (4)"],
    ),
    (
        "tp-divides",
        body(engine={"tensorParallelSize": 4}, resources={"gpu": {"product": "L4", "count": 6}}),
        ["spec.engine.tensorParallelSize", "4 must divide spec.resources.gpu.count (6)"],
    ),
    (
        "slo-zero",
        body(scaling={"slo": {"ttftP95": "0ms"}}),
        ["spec.scaling.slo.ttftP95", "0ms must be greater than 0"],
    ),
    ("slo-pattern", body(scaling={"slo": {"itlP95": "fast"}}), ["spec.scaling.slo.itlP95", "fast"]),
    (
        "managed-flag",
        body(engine={"extraArgs": ["--tensor-parallel-size=2"]}),
        ["spec.engine.extraArgs", "--tensor-parallel-size=2 is set by llmscale"],
    ),
    (
        "managed-label",
        body(podLabels={"llmscale.dev/deployment": "other"}),
        ["spec.podLabels", "llmscale.dev/deployment is set by llmscale"],
    ),
    (
        "gpu-enum",
        body(resources={"gpu": {"product": "GTX-1080"}}),
        ["spec.resources.gpu.product", "GTX-1080"],
    ),
    (
        "gpu-count",
        body(resources={"gpu": {"product": "L4", "count": 16}}),
        ["spec.resources.gpu.count", "16"],
    ),
    ("strategy-enum", body(scaling={"strategy": "Sometimes"}), ["spec.scaling.strategy", "Sometimes"]),
    ("objective", body(scaling={"slo": {"objective": 1.5}}), ["spec.scaling.slo.objective", "1.5"]),
    ("utilization", body(engine={"gpuMemoryUtilization": 0}), ["spec.engine.gpuMemoryUtilization", "0"]),
    (
        "cache-both",
        body(modelCache={"emptyDir": {}, "persistentVolumeClaim": {"claimName": "c"}}),
        ["spec.modelCache", "exactly one"],
    ),
    (
        "model-required",
        {**body(), "spec": {"resources": {"gpu": {"product": "L4"}}}},
        ["spec.model", "Required"],
    ),
    ("name-dns-1035", body(name="llama.8b"), ["metadata.name: llama.8b must be a DNS-1035 label"]),
    ("unknown-field", body(engine={"tensorParallel": 2}), ["tensorParallel"]),
]


@pytest.mark.parametrize(
    ("obj", "fragments"), [(o, f) for _, o, f in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_spec_rejected_with_field_named_message(
    crd_ready: None, kubectl: Callable[..., Any], namespace: str, obj: dict[str, Any], fragments: list[str]
) -> None:
    result = apply(kubectl, namespace, obj)
    assert result.returncode != 0, f"accepted: {obj}"
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_valid_examples_are_accepted(crd_ready: None, kubectl: Callable[..., Any], namespace: str) -> None:
    for path in sorted((REPO / "examples").glob("*.yaml")):
        result = kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
        assert result.returncode == 0, f"{path.name}: {result.stderr}"


def test_kubectl_explain_shows_the_descriptions(
    crd_ready: None, kubectl: Callable[..., Any], wait_for: Callable[..., Any]
) -> None:
    def explained() -> str | None:
        result = kubectl("explain", "llmdeployment.spec.scaling.slo", check=False)
        return result.stdout if result.returncode == 0 and "ttftP95" in result.stdout else None

    text = wait_for(explained, 30, "kubectl explain to know the CRD")
    assert "95th-percentile time to first token" in text
    assert "Example: 500ms" in text
    assert "objective" in text and "error budget" in text


scaling_specs = st.fixed_dictionaries(
    {
        "strategy": st.sampled_from(["Auto", "Warm", "Autoscaled", "ScaleToZero"]),
        "maxReplicas": st.integers(1, 4),
    },
    optional={"minReplicas": st.integers(0, 6), "replicas": st.integers(0, 6)},
)


def _violates(scaling: dict[str, Any]) -> bool:
    from pydantic import ValidationError

    from llmscale.api import ScalingSpec

    try:
        ScalingSpec.model_validate(scaling)
    except ValidationError:
        return True
    return False


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scaling_specs.filter(_violates))
def test_any_contradictory_scaling_spec_is_rejected_naming_the_field(
    crd_ready: None, kubectl: Callable[..., Any], namespace: str, scaling: dict[str, Any]
) -> None:
    result = apply(kubectl, namespace, body(scaling=scaling))
    assert result.returncode != 0, f"accepted: {scaling}"
    assert "spec.scaling.minReplicas" in result.stderr or "spec.scaling.replicas" in result.stderr, (
        result.stderr
    )

"""Every cross-field rule: the CRD's CEL and the pydantic mirror agree, with the same message."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from llmscale.api import (
    EngineSpec,
    LLMDeploymentSpec,
    ModelCacheSpec,
    ModelSpec,
    ScalingSpec,
    SloSpec,
)

GPU = {"gpu": {"product": "H100-80GB"}}

# (schema path, pydantic model, valid wire value, invalid wire value, expected message)
CASES: list[tuple[str, type[BaseModel], dict[str, Any], dict[str, Any], str]] = [
    (
        "spec.scaling",
        ScalingSpec,
        {"minReplicas": 2, "maxReplicas": 2},
        {"minReplicas": 3, "maxReplicas": 2},
        "spec.scaling.minReplicas: 3 must not exceed maxReplicas (2)",
    ),
    (
        "spec.scaling",
        ScalingSpec,
        {"strategy": "ScaleToZero", "minReplicas": 0},
        {"strategy": "ScaleToZero", "minReplicas": 1},
        "spec.scaling.minReplicas: 1 must be 0 with strategy ScaleToZero",
    ),
    (
        "spec.scaling",
        ScalingSpec,
        {"strategy": "Warm", "minReplicas": 1},
        {"strategy": "Warm", "minReplicas": 0},
        "spec.scaling.minReplicas: 0 must be at least 1 with strategy Warm",
    ),
    (
        "spec.scaling",
        ScalingSpec,
        {"replicas": 4, "maxReplicas": 4},
        {"replicas": 5, "maxReplicas": 4},
        "spec.scaling.replicas: 5 must not exceed maxReplicas (4)",
    ),
    (
        "spec.scaling",
        ScalingSpec,
        {"strategy": "Autoscaled", "replicas": 2, "minReplicas": 2},
        {"strategy": "Autoscaled", "replicas": 1, "minReplicas": 2},
        "spec.scaling.replicas: 1 must be at least minReplicas (2)",
    ),
    (
        "spec.scaling",
        ScalingSpec,
        {"strategy": "Warm", "replicas": 1},
        {"strategy": "Warm", "replicas": 0},
        "spec.scaling.replicas: 0 must be at least 1 with strategy Warm",
    ),
    (
        "spec.scaling.slo",
        SloSpec,
        {"ttftP95": "500ms"},
        {"ttftP95": "0s"},
        "spec.scaling.slo.ttftP95: 0s must be greater than 0",
    ),
    (
        "spec.scaling.slo",
        SloSpec,
        {"itlP95": "1m30s"},
        {"itlP95": "0ms"},
        "spec.scaling.slo.itlP95: 0ms must be greater than 0",
    ),
    (
        "spec.engine",
        EngineSpec,
        {"extraArgs": ["--enable-prefix-caching", "--max-num-seqs=64", "--portal"]},
        {"extraArgs": ["--enable-prefix-caching", "--port=9000"]},
        "spec.engine.extraArgs: --port=9000 is set by llmscale from the spec;"
        " use the matching spec field instead",
    ),
    (
        "spec.engine",
        EngineSpec,
        {"extraArgs": ["--max-num-seqs", "8"]},
        {"extraArgs": ["-tp", "2"]},
        "spec.engine.extraArgs: -tp is set by llmscale from the spec; use the matching spec field instead",
    ),
    (
        "spec.model",
        ModelSpec,
        {"name": "x", "architectureConfigMap": {"name": "cfg"}},
        {"name": "x", "architecture": {"hidden_size": 8}, "architectureConfigMap": {"name": "cfg"}},
        "spec.model: set architecture or architectureConfigMap (cfg), not both",
    ),
    (
        "spec.modelCache",
        ModelCacheSpec,
        {"emptyDir": {"sizeLimit": "100Gi"}},
        {"emptyDir": {}, "persistentVolumeClaim": {"claimName": "cache"}},
        "spec.modelCache: set exactly one of persistentVolumeClaim and emptyDir",
    ),
    (
        "spec.modelCache",
        ModelCacheSpec,
        {"persistentVolumeClaim": {"claimName": "cache"}},
        {},
        "spec.modelCache: set exactly one of persistentVolumeClaim and emptyDir",
    ),
    (
        "spec",
        LLMDeploymentSpec,
        {
            "model": {"name": "m"},
            "engine": {"tensorParallelSize": 2},
            "resources": {"gpu": {"product": "L4", "count": 4}},
        },
        {
            "model": {"name": "m"},
            "engine": {"tensorParallelSize": 4},
            "resources": {"gpu": {"product": "L4", "count": 6}},
        },
        "spec.engine.tensorParallelSize: 4 must divide spec.resources.gpu.count (6)",
    ),
    (
        "spec",
        LLMDeploymentSpec,
        {"model": {"name": "m"}, "resources": GPU, "podLabels": {"llmscale.dev/runner": "emulator"}},
        {
            "model": {"name": "m"},
            "resources": GPU,
            "podLabels": {"team": "a", "llmscale.dev/deployment": "x"},
        },
        "spec.podLabels: llmscale.dev/deployment is set by llmscale and cannot be overridden",
    ),
]
IDS = [f"{path}:{expected.split(':')[1].strip()[:40]}" for path, _, _, _, expected in CASES]


@pytest.mark.parametrize(("path", "model", "valid", "invalid", "expected"), CASES, ids=IDS)
def test_cel_rule_rejects_with_field_named_message(
    cel: Any, path: str, model: type[BaseModel], valid: dict[str, Any], invalid: dict[str, Any], expected: str
) -> None:
    assert cel.violations(path, valid) == []
    assert cel.violations(path, invalid) == [expected]


@pytest.mark.parametrize(("path", "model", "valid", "invalid", "expected"), CASES, ids=IDS)
def test_pydantic_mirror_gives_the_same_verdict_and_message(
    path: str, model: type[BaseModel], valid: dict[str, Any], invalid: dict[str, Any], expected: str
) -> None:
    model.model_validate(valid)
    with pytest.raises(ValidationError) as caught:
        model.model_validate(invalid)
    assert expected in str(caught.value)


def test_every_cel_rule_in_the_crd_has_a_case() -> None:
    from llmscale.api.crd import open_api_schema

    def rules(node: dict[str, Any], path: str) -> list[tuple[str, str]]:
        found = [(path, r["rule"]) for r in node.get("x-kubernetes-validations", [])]
        for name, child in node.get("properties", {}).items():
            found += rules(child, f"{path}.{name}" if path else name)
        if "items" in node:
            found += rules(node["items"], path)
        return found

    # the root rule (metadata.name) has its own test in test_api_crd.py
    all_rules = [(path, rule) for path, rule in rules(open_api_schema(), "") if path]
    covered_paths = {path for path, *_ in CASES}
    assert {path for path, _ in all_rules} <= covered_paths
    per_path: dict[str, int] = {}
    for path, _ in all_rules:
        per_path[path] = per_path.get(path, 0) + 1
    # each rule has at least one invalid case (messages are distinct per rule)
    for path, count in per_path.items():
        assert len({e for p, _, _, _, e in CASES if p == path}) >= count - (
            1 if path == "spec.modelCache" else 0
        )


scaling_dicts = st.fixed_dictionaries(
    {
        "strategy": st.sampled_from(["Auto", "Warm", "Autoscaled", "ScaleToZero"]),
        "maxReplicas": st.integers(1, 6),
    },
    optional={"minReplicas": st.integers(0, 7), "replicas": st.integers(0, 7)},
)


@settings(max_examples=80, deadline=None)
@given(scaling_dicts)
def test_cel_and_pydantic_agree_on_any_scaling_spec(cel: Any, value: dict[str, Any]) -> None:
    cel_ok = cel.violations("spec.scaling", value) == []
    try:
        ScalingSpec.model_validate(value)
        pydantic_ok = True
    except ValidationError:
        pydantic_ok = False
    assert cel_ok == pydantic_ok, value


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8))
def test_tensor_parallel_rule_agrees(cel: Any, tensor_parallel: int, gpus: int) -> None:
    value = {
        "model": {"name": "m"},
        "engine": {"tensorParallelSize": tensor_parallel},
        "resources": {"gpu": {"product": "H100-80GB", "count": gpus}},
    }
    cel_ok = cel.violations("spec", value) == []
    assert cel_ok == (gpus % tensor_parallel == 0)
    try:
        LLMDeploymentSpec.model_validate(value)
        assert cel_ok
    except ValidationError:
        assert not cel_ok

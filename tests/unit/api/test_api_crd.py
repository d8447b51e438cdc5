"""The generated CRD: structural, documented, up to date, with the contract's names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmscale.api import LLMDeploymentSpec, LLMDeploymentStatus, ScalingSpec
from llmscale.api.crd import CRD_FILENAME, build_crd, open_api_schema, render_crd_yaml
from llmscale.api.generate import main as generate_main

REPO = Path(__file__).resolve().parents[3]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for name, child in node.get("properties", {}).items():
            found += _walk(child, f"{path}.{name}")
        if "items" in node:
            found += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_committed_crd_is_up_to_date() -> None:
    committed = (REPO / "crds" / CRD_FILENAME).read_text(encoding="utf-8")
    assert committed == render_crd_yaml(), "crds/ is stale: run `make generate`"


def test_generate_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    assert generate_main(["--output", str(tmp_path), "--check"]) == 1
    assert generate_main(["--output", str(tmp_path)]) == 0
    assert generate_main(["--output", str(tmp_path), "--check"]) == 0
    path = tmp_path / CRD_FILENAME
    path.write_text(path.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    assert generate_main(["--output", str(tmp_path), "--check"]) == 1


def test_schema_is_structural() -> None:
    for path, node in _walk(open_api_schema()):
        assert "type" in node, path
        for forbidden in ("$ref", "$defs", "anyOf", "allOf", "oneOf", "title", "examples", "const"):
            assert forbidden not in node, (path, forbidden)
        if node.get("additionalProperties") is not None:
            assert "properties" not in node, path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path


def test_every_spec_field_has_a_description_with_an_example() -> None:
    spec = open_api_schema()["properties"]["spec"]
    for path, node in _walk(spec):
        if path and not path.endswith(("[]", "{}")):
            assert "Example:" in node.get("description", ""), path


def test_optional_fields_are_nullable_not_any_of() -> None:
    spec = open_api_schema()["properties"]["spec"]["properties"]
    assert spec["engine"]["properties"]["tensorParallelSize"]["nullable"] is True
    assert spec["engine"]["properties"]["tensorParallelSize"]["type"] == "integer"
    assert "nullable" not in spec["scaling"]["properties"]["maxReplicas"]


def test_opaque_objects_preserve_unknown_fields() -> None:
    root = open_api_schema()["properties"]
    spec = root["spec"]["properties"]
    assert spec["affinity"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["tolerations"]["items"]["x-kubernetes-preserve-unknown-fields"] is True
    assert spec["model"]["properties"]["architecture"]["x-kubernetes-preserve-unknown-fields"] is True
    status = root["status"]["properties"]
    assert status["scalerState"]["x-kubernetes-preserve-unknown-fields"] is True
    # plan keeps the planner's further keys but types the documented ones
    assert status["plan"]["x-kubernetes-preserve-unknown-fields"] is True
    assert status["plan"]["properties"]["kvCacheTokens"]["type"] == "integer"


def test_crd_defaults_equal_the_pydantic_defaults() -> None:
    scaling = open_api_schema()["properties"]["spec"]["properties"]["scaling"]["properties"]
    model_defaults = ScalingSpec().to_wire()
    assert scaling["strategy"]["default"] == model_defaults["strategy"] == "Auto"
    assert scaling["maxReplicas"]["default"] == model_defaults["maxReplicas"]
    assert scaling["mode"]["default"] == "Active"
    slo = scaling["slo"]["properties"]
    assert {k: slo[k]["default"] for k in ("ttftP95", "itlP95", "objective")} == model_defaults["slo"]
    assert scaling["slo"]["default"] == {}
    assert "default" not in scaling["minReplicas"]  # depends on the strategy: defaults.min_replicas_for


def test_enums_ranges_and_patterns() -> None:
    spec = open_api_schema()["properties"]["spec"]["properties"]
    gpu = spec["resources"]["properties"]["gpu"]["properties"]
    assert gpu["product"]["enum"] == [
        "H200",
        "H100-80GB",
        "A100-80GB",
        "A100-40GB",
        "L40S",
        "L4",
        "A10G",
        "T4",
        "RTX-4090",
    ]
    assert (gpu["count"]["minimum"], gpu["count"]["maximum"]) == (1, 8)
    scaling = spec["scaling"]["properties"]
    assert scaling["strategy"]["enum"] == ["Auto", "Warm", "Autoscaled", "ScaleToZero"]
    assert scaling["mode"]["enum"] == ["Active", "DryRun"]
    slo = scaling["slo"]["properties"]
    assert slo["ttftP95"]["pattern"] == r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
    assert (
        slo["objective"]["minimum"],
        slo["objective"]["exclusiveMinimum"],
        slo["objective"]["maximum"],
    ) == (
        0,
        True,
        1,
    )
    engine = spec["engine"]["properties"]
    assert (
        engine["gpuMemoryUtilization"]["exclusiveMinimum"],
        engine["gpuMemoryUtilization"]["maximum"],
    ) == (True, 1)
    assert engine["extraArgs"]["maxItems"] == 64  # bounded lists keep CEL cost estimates within budget
    assert set(open_api_schema()["properties"]["spec"]["required"]) == {"model", "resources"}


def test_names_subresources_and_printer_columns() -> None:
    crd = build_crd()
    assert crd["metadata"]["name"] == "llmdeployments.llmscale.dev"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "LLMDeployment",
        "llmdeployments",
        ["llmdep"],
    )
    assert crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.scaling.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Model"] == ".spec.model.name"
    assert columns["Strategy"] == ".status.strategy"
    assert columns["Desired"] == ".status.desiredReplicas"
    assert columns["Ready"] == ".status.readyReplicas"
    assert columns["GPU"] == ".spec.resources.gpu.product"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_status_has_every_contract_field() -> None:
    status = open_api_schema()["properties"]["status"]["properties"]
    contract = [
        "replicas",
        "readyReplicas",
        "desiredReplicas",
        "strategy",
        "endpoint",
        "observedGeneration",
        "conditions",
        "plan",
        "strategyReason",
        "forecast",
        "observed",
        "coldStart",
        "cost",
        "lastDecisions",
        "scalerState",
        "selector",
    ]
    for field in contract:
        assert field in status, field
    assert status["lastDecisions"]["maxItems"] == 10
    assert set(status["forecast"]["properties"]) == {
        "requestsPerSecond",
        "lower",
        "upper",
        "horizonSeconds",
        "model",
        "reason",
    }
    assert set(status["observed"]["properties"]) == {
        "ttftP95Seconds",
        "itlP95Seconds",
        "requestsPerSecond",
        "sloAttainment",
    }
    assert set(status["coldStart"]["properties"]) == {"p50Seconds", "p95Seconds", "samples"}
    assert set(status["cost"]["properties"]) == {"gpuHours", "dollarsPerHour", "gpuHoursSavedVsAlwaysOn"}
    conditions = status["conditions"]["items"]["properties"]
    assert conditions["type"]["enum"] == ["Ready", "ModelFits", "MetricsAvailable", "ScalingActive"]


def test_example_manifests_parse() -> None:
    examples = sorted((REPO / "examples").glob("*.yaml"))
    assert examples, "examples/ has manifests"
    for path in examples:
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document and document.get("kind") == "LLMDeployment":
                LLMDeploymentSpec.model_validate(document["spec"])


def test_status_round_trips_and_ignores_unknown_keys() -> None:
    wire = {
        "replicas": 2,
        "conditions": [{"type": "Ready", "status": "True", "reason": "ReplicasReady", "message": "2/2"}],
        "plan": {"fits": True, "kvCacheTokens": 1000, "someNewKey": 1},
        "scalerState": {"anything": [1, 2]},
        "kopf": {"progress": {}},
    }
    status = LLMDeploymentStatus.model_validate(wire)
    assert status.condition("Ready") is not None
    out = status.to_wire()
    assert out["plan"]["someNewKey"] == 1 and out["scalerState"] == {"anything": [1, 2]}
    assert "kopf" not in out


def test_gpu_enum_is_the_planner_catalog() -> None:
    from llmscale.api import GPU_PRODUCTS
    from llmscale.planner import GPU_CATALOG

    assert set(GPU_PRODUCTS) == set(GPU_CATALOG)


def test_quantization_enum_maps_onto_the_planner() -> None:
    from typing import get_args

    from llmscale.api.spec import Quantization
    from llmscale.resources.fit import PLANNER_QUANTIZATION

    assert set(get_args(Quantization)) == set(PLANNER_QUANTIZATION)


def test_name_must_be_a_dns_1035_label(cel: Any) -> None:
    import celpy

    rule = open_api_schema()["x-kubernetes-validations"][0]
    env = celpy.Environment()
    for name, ok in [("llama-8b", True), ("llama.8b", False), ("8b", False), ("a" * 64, False)]:
        activation = {"self": celpy.json_to_cel({"metadata": {"name": name}})}
        assert bool(env.program(env.compile(rule["rule"])).evaluate(activation)) is ok, name
    activation = {"self": celpy.json_to_cel({"metadata": {"name": "llama.8b"}})}
    message = env.program(env.compile(rule["messageExpression"])).evaluate(activation)
    assert str(message).startswith("metadata.name: llama.8b must be a DNS-1035 label")

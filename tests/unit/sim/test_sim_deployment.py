"""`llmscale simulate --deployment FILE.yaml`: the manifest decides the simulated llmscale policy
(exactly the operator's), flags override single fields, a bad manifest is one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmscale.cli import main
from llmscale.controller.autoscaling.policy import policy_for
from llmscale.controller.autoscaling.settings import AutoscalerSettings
from llmscale.sim.deployment import load_deployment, scored_itl_seconds, simulated_deployment
from llmscale.sim.llmscale_policy import LLMScalePolicy
from llmscale.sim.policy import FleetObservation, SimContext

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "traces"
CODE_TRACE = str(SHARED / "AzureLLMInferenceTrace_code.csv")

MANIFEST = {
    "apiVersion": "llmscale.dev/v1alpha1",
    "kind": "LLMDeployment",
    "metadata": {
        "name": "coder",
        "namespace": "team",
        "annotations": {"llmscale.dev/scaling-overrides": '{"idle_window_seconds": 45}'},
    },
    "spec": {
        "model": {"name": "meta-llama/Meta-Llama-3-8B"},
        "resources": {"gpu": {"product": "A100-80GB"}},
        "scaling": {"strategy": "ScaleToZero", "maxReplicas": 3, "slo": {"ttftP95": "750ms"}},
    },
}


def write(tmp_path: Path, document: object, name: str = "dep.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return str(path)


def test_the_simulated_policy_is_the_operators(tmp_path: Path) -> None:
    path = write(tmp_path, MANIFEST)
    resource, replica = simulated_deployment(path)
    assert replica.gpu_name == "A100-80GB"
    policy = LLMScalePolicy(deployment=resource)
    policy.prepare(
        SimContext(
            model=replica,
            slo_ttft_p95_seconds=9.0,  # the fleet's numbers never leak into the policy
            slo_itl_p95_seconds=None,
            slo_objective=0.5,
            cold_start_seconds=1.0,
            gpu_price_per_hour_usd=0.0,
            min_replicas=0,
            max_replicas=64,
            replica_capacity_rps=1.0,
            mean_input_tokens=20_000.0,
            mean_output_tokens=5.0,
        )
    )
    operator = policy_for(MANIFEST, AutoscalerSettings(metrics_port=None))
    assert policy.policy == operator
    assert operator.slo_ttft_p95_seconds == 0.75 and operator.max_replicas == 3
    assert operator.idle_window_seconds == 45.0  # the manifest's annotation, as in the cluster


def test_flags_override_single_fields(tmp_path: Path) -> None:
    resource, replica = simulated_deployment(
        write(tmp_path, MANIFEST), gpu="H100-80GB", max_replicas=5, slo_ttft_p95_seconds=0.5
    )
    scaling = resource.spec.scaling
    assert (scaling.max_replicas, scaling.slo.ttft_p95_seconds) == (5, 0.5)
    assert replica.gpu_name == "H100-80GB"
    assert scaling.strategy == "ScaleToZero"  # untouched fields stay the manifest's
    assert scored_itl_seconds(resource) is None  # the manifest set no ITL target
    resource, _ = simulated_deployment(write(tmp_path, MANIFEST), slo_itl_p95_seconds=0.05)
    assert scored_itl_seconds(resource) == 0.05


def test_json_reports_the_manifests_slo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MANIFEST)
    argv = ["simulate", "--trace", CODE_TRACE, "--duration", "300", "--policy", "llmscale,hpa"]
    assert main([*argv, "--deployment", path, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["slo_ttft_p95_seconds"] == 0.75
    assert document["gpu"] == "A100-80GB"
    assert [p["name"] for p in document["policies"]] == ["llmscale", "hpa"]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (
            {**MANIFEST, "spec": {**MANIFEST["spec"], "scaling": {"maxReplicas": 0}}},
            "spec.scaling.maxReplicas",
        ),
        (
            {**MANIFEST, "spec": {**MANIFEST["spec"], "resources": {"gpu": {"product": "B200"}}}},
            "spec.resources.gpu.product: value 'B200'",
        ),
        ({**MANIFEST, "spec": {"resources": MANIFEST["spec"]["resources"]}}, "spec.model: missing"),
        ({"kind": "Deployment"}, "kind: no document of kind LLMDeployment"),
        ("spec: [unclosed", "is not valid YAML"),
    ],
)
def test_a_bad_manifest_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: object, expected: str
) -> None:
    path = write(tmp_path, document)
    assert main(["simulate", "--trace", CODE_TRACE, "--deployment", path]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"--deployment {path}" in err and expected in err


def test_a_missing_manifest_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="cannot read the file"):
        load_deployment(tmp_path / "absent.yaml")


def test_a_warm_manifest_runs_at_its_fixed_count_as_in_the_cluster(tmp_path: Path) -> None:
    """The operator's loop does not own Warm: reconcile keeps spec.scaling.replicas (here 2)."""
    warm = {**MANIFEST, "spec": {**MANIFEST["spec"], "scaling": {"strategy": "Warm", "replicas": 2}}}
    resource, replica = simulated_deployment(write(tmp_path, warm))
    policy = LLMScalePolicy(deployment=resource)
    policy.prepare(
        SimContext(
            model=replica,
            slo_ttft_p95_seconds=1.0,
            slo_itl_p95_seconds=None,
            slo_objective=0.99,
            cold_start_seconds=45.0,
            gpu_price_per_hour_usd=1.0,
            min_replicas=0,
            max_replicas=8,
            replica_capacity_rps=10.0,
            mean_input_tokens=1000.0,
            mean_output_tokens=200.0,
        )
    )
    assert policy.fixed_replicas == 2
    busy = FleetObservation(
        now=10.0, current_replicas=2, ready_replicas=2, request_rate_rps=500.0, prompt_tokens_rate=5e5,
        generation_tokens_rate=1e5, num_requests_waiting=300.0, num_requests_running=256.0,
        kv_cache_usage=0.99, ttft_p95_seconds=30.0, itl_p95_seconds=0.1, gateway_arrivals_rps=500.0,
        gateway_queue_depth=0, metrics_available=True, cold_start_p50_seconds=None,
        cold_start_p95_seconds=None,
    )  # fmt: skip
    assert policy.decide(busy) == 2  # overload changes nothing: no loop owns a Warm deployment

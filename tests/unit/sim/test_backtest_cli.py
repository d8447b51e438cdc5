"""`llmscale backtest`: a small suite end to end (JSON contract, table, plots) and one-line
errors for bad input, all checked before any simulation runs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from llmscale import cli

REPO = Path(__file__).resolve().parents[3]
MANIFEST = REPO / "suites" / "deployments" / "llama-8b-h100.yaml"
KEYS = {"name", "slo_attainment", "ttft_p95_s", "gpu_hours", "cold_starts", "scale_events", "failed_requests"}


@pytest.fixture()
def suite(tmp_path: Path) -> Path:
    shutil.copy(MANIFEST, tmp_path / "deployment.yaml")
    (tmp_path / "tiny.csv").write_text(
        "timestamp,input_tokens,output_tokens\n" + "".join(f"{t * 0.5},800,60\n" for t in range(400)),
        encoding="utf-8",
    )
    path = tmp_path / "suite.yaml"
    path.write_text(
        "traces_dir: .\n"
        "defaults:\n  deployment: deployment.yaml\n"
        "scenarios:\n"
        "  - name: dev\n    generator: sparse-developer\n    duration: 1h\n    rate_scales: [1, 2]\n"
        "  - name: tiny\n    trace: tiny.csv\n    start: 10\n    slo_ttft_p95: 2s\n",
        encoding="utf-8",
    )
    return path


def _main(*argv: str) -> int:
    os.environ["LLMSCALE_NO_PROGRESS"] = "1"
    return cli.main(["backtest", *argv])


def test_a_small_suite_gives_every_policy_and_the_targets(
    suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plots = tmp_path / "plots"
    assert _main("--suite", str(suite), "--json", "--plot-dir", str(plots)) == 0
    document = json.loads(capsys.readouterr().out)
    names = [scenario["name"] for scenario in document["scenarios"]]
    assert names == ["dev-x1", "dev-x2", "tiny"]
    for scenario in document["scenarios"]:
        policies = [p["name"] for p in scenario["policies"]]
        assert policies == [
            "llmscale", "hpa", "keda", "kpa", "hpa-tuned", "keda-tuned", "kpa-tuned", "warm", "oracle",
        ]  # fmt: skip
        for policy in scenario["policies"]:
            assert set(policy) >= KEYS
        assert set(scenario["targets"]) == {"attainment", "cost_vs_baselines", "cost_vs_oracle", "no_failed"}
        assert (plots / f"{scenario['name']}.png").stat().st_size > 10_000
    tiny = document["scenarios"][2]
    # 400 requests every 0.5 s; start 10 s skips the first 20 and restarts the clock.
    assert tiny["requests"] == 380 and tiny["duration_seconds"] == pytest.approx(189.5)
    assert tiny["slo_ttft_p95_seconds"] == 2.0  # the scenario overrides the manifest's 1 s


def test_table_output(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main("--suite", str(suite), "--scenario", "tiny", "--policy", "llmscale,hpa,oracle") == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "llmscale" in out and "oracle" in out and "x oracle" in out


def _error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert _main(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "usage:" not in err
    assert len(err.splitlines()) == 1, err
    return err


def _edit(suite: Path, old: str, new: str) -> None:
    suite.write_text(suite.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


def test_unknown_scenario_key(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(suite, "    start: 10\n", "    start: 10\n    rate: 3\n")
    err = _error(capsys, "--suite", str(suite))
    assert "scenarios[1]" in err and "'rate'" in err


def test_missing_trace(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "'nope.csv'" in _error(capsys, "--suite", str(suite), "--trace", "nope.csv")
    _edit(suite, "tiny.csv", "gone.csv")
    assert "gone.csv" in _error(capsys, "--suite", str(suite))


def test_negative_offset(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(suite, "start: 10", "start: -5")
    err = _error(capsys, "--suite", str(suite))
    assert "start" in err and "-5" in err


def test_bad_manifest(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = suite.parent / "deployment.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("maxReplicas: 32", "maxReplicas: -3"))
    err = _error(capsys, "--suite", str(suite))
    assert "deployment.yaml" in err and "maxReplicas" in err.replace("max_replicas", "maxReplicas")
    manifest.write_text("kind: Deployment\n")
    assert "kind: no document of kind LLMDeployment" in _error(capsys, "--suite", str(suite))


def test_unwritable_plot_dir(suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    err = _error(capsys, "--suite", str(suite), "--plot-dir", str(blocker / "plots"))
    assert "--plot-dir" in err and "a-file" in err


def test_unknown_scenario_name(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, "--suite", str(suite), "--scenario", "nope")
    assert "--scenario" in err and "'nope'" in err and "dev-x1" in err

"""`llmscale simulate`: JSON contract, table, plot, and one-line errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from llmscale.errors import UserInputError
from llmscale.sim import cli

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "traces"
CODE_TRACE = str(SHARED / "AzureLLMInferenceTrace_code.csv")


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="llmscale")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", *argv])
    status: int = args.func(args)
    return status


def test_json_has_the_design_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("--trace", CODE_TRACE, "--duration", "600", "--policy", "hpa,warm,oracle", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["trace"] == CODE_TRACE
    assert [p["name"] for p in document["policies"]] == ["hpa", "warm", "oracle"]
    for policy in document["policies"]:
        assert {"name", "slo_attainment", "ttft_p95_s", "gpu_hours", "cold_starts", "scale_events",
                "failed_requests"} <= set(policy)  # fmt: skip
        assert 0.0 <= policy["slo_attainment"] <= 1.0 and policy["gpu_hours"] > 0


def test_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "out.png"
    assert _run("--trace", CODE_TRACE, "--duration", "300", "--policy", "kpa", "--plot", str(plot)) == 0
    out = capsys.readouterr().out
    assert "SLO attain" in out and "kpa" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--policy", "vpa"), "--policy: value 'vpa'"),
        (("--gpu", "B200"), "--gpu: value 'B200'"),
        (("--model", "no-such-model"), "--model: value 'no-such-model'"),
    ],
)
def test_bad_flags_are_one_line_user_errors(flags: tuple[str, str], message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        _run("--trace", CODE_TRACE, *flags)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_rate_scale_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        _run("--trace", CODE_TRACE, "--rate-scale", "0")
    assert caught.value.code == 2
    assert "--rate-scale: value '0'" in capsys.readouterr().err


def test_bad_plot_path_and_negative_start_fail_before_the_run(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match=r"--plot: directory .*nowhere"):
        _run("--trace", CODE_TRACE, "--plot", str(tmp_path / "nowhere" / "x.png"))
    with pytest.raises(UserInputError, match=r"--plot: value .* is not a writable file path"):
        _run("--trace", CODE_TRACE, "--plot", str(tmp_path))
    with pytest.raises(UserInputError, match=r"--start: value -5\.0"):
        _run("--trace", CODE_TRACE, "--start", "-5")

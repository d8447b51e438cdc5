"""Trace readers: every shipped format, rate scaling, and one-line errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmscale.errors import TraceFormatError, UserInputError
from llmscale.sim.traces import read_trace

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "traces"


def test_azure_code_trace() -> None:
    trace = read_trace(SHARED / "AzureLLMInferenceTrace_code.csv")
    assert len(trace) == 8819 and trace.source_format == "azure"
    assert trace.arrival_seconds[0] == 0.0 and 3430 < trace.duration_seconds < 3440
    assert np.all(np.diff(trace.arrival_seconds) >= 0)
    assert 2000 < trace.input_tokens.mean() < 2100


def test_mooncake_jsonl() -> None:
    trace = read_trace(SHARED / "synthetic_trace.jsonl")
    assert len(trace) == 3993 and trace.source_format == "mooncake"
    assert trace.duration_seconds == pytest.approx(1022.025, abs=0.01)


def test_servegen_directory_is_sampled_deterministically() -> None:
    first = read_trace(SHARED / "servegen" / "m-large", duration_seconds=1200, rate_scale=0.1, seed=3)
    second = read_trace(SHARED / "servegen" / "m-large", duration_seconds=1200, rate_scale=0.1, seed=3)
    assert first.source_format == "servegen"
    assert np.array_equal(first.arrival_seconds, second.arrival_seconds)
    assert first.duration_seconds < 1200
    # The first two windows' aggregate rate is tens of req/s; x0.1 leaves a few per second.
    assert 1.0 < len(first) / 1200 < 60.0


def test_rate_scale_compresses_time(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("timestamp,input_tokens,output_tokens\n100,10,5\n102,20,6\n110,30,7\n")
    trace = read_trace(path, rate_scale=2.0)
    assert trace.source_format == "generic"
    assert list(trace.arrival_seconds) == [0.0, 1.0, 5.0]
    assert list(trace.input_tokens) == [10, 20, 30]
    with pytest.raises(UserInputError, match="--rate-scale"):
        read_trace(path, rate_scale=0.0)


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("timestamp,input_tokens\n1,2\n", 1, "missing column 'output_tokens'"),
        ("timestamp,input_tokens,output_tokens\n5,1,1\n3,1,1\n", 3, "earlier than the previous"),
        ("timestamp,input_tokens,output_tokens\n1,-4,1\n", 2, "negative token count"),
        ("timestamp,input_tokens,output_tokens\n1,abc,1\n", 2, "whole numbers"),
        ("timestamp,input_tokens,output_tokens\nsoon,1,1\n", 2, "not a valid time"),
        ("timestamp,input_tokens,output_tokens\n", None, "no requests"),
        ("", None, "empty file"),
        ("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,5\n", 2, "whole numbers"),
        ('{"timestamp": 1, "input_length": 3}\n', 1, "missing field 'output_length'"),
        ("a,b,c\n1,2,3\n", 1, "unknown header"),
    ],
)
def test_bad_files_name_file_line_and_problem(
    tmp_path: Path, content: str, line: int | None, problem: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(TraceFormatError) as caught:
        read_trace(path)
    assert caught.value.line == line
    assert problem in caught.value.problem
    message = str(caught.value)
    assert "\n" not in message and str(path) in message


def test_azure_seven_digit_fractions(tmp_path: Path) -> None:
    path = tmp_path / "azure.csv"
    path.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,5,6\n2023-11-16 18:17:05.0000001,7,8\n"
    )
    trace = read_trace(path)
    assert trace.arrival_seconds[1] == pytest.approx(1.0200401, abs=1e-6)


def test_servegen_file_is_detected_from_content(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("0,2.0,1.0,Gamma,1.0,0.5\n600,0,,,,\n1200,4.0,2.0,Weibull,0.5,1.0\n")
    trace = read_trace(path, seed=1)
    assert trace.source_format == "servegen"
    first_window = int(np.sum(trace.arrival_seconds < 600))
    assert 900 < first_window < 1500  # 2 req/s for 600 s
    assert not np.any((trace.arrival_seconds >= 600) & (trace.arrival_seconds < 1200))  # idle window
    assert np.all(trace.input_tokens >= 1) and np.all(trace.output_tokens >= 1)


def test_servegen_unknown_distribution(tmp_path: Path) -> None:
    path = tmp_path / "chunk-7-trace.csv"
    path.write_text("0,2.0,1.0,Pareto,1.0,0.5\n")
    with pytest.raises(TraceFormatError, match=r"chunk-7-trace.csv:1: distribution 'Pareto'"):
        read_trace(path)

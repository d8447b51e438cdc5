"""Percentiles, level summaries, goodput and the capacity hint on known samples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmscale.bench.report import Progress, capacity_hint, render_table
from llmscale.bench.stats import RequestResult, Slo, percentile, summarize
from llmscale.bench.workload import fixed_workload, trace_workload
from llmscale.errors import UserInputError

SLO = Slo(ttft_p95_seconds=0.5, itl_p95_seconds=0.05)


@pytest.mark.parametrize(
    ("samples", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([float(i) for i in range(1, 101)], 95, 95.05),
        ([float(i) for i in range(1, 101)], 99, 99.01),
        ([float(i) for i in range(1, 101)], 90, 90.1),
        ([7.0], 99, 7.0),
        ([3.0, 1.0, 2.0], 50, 2.0),  # unsorted input
        ([0.0, 10.0], 95, 9.5),
    ],
)
def test_percentile_is_linear_interpolation(samples: list[float], q: float, expected: float) -> None:
    assert percentile(samples, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 50) is None


def ok(start: float, ttft: float, gaps: list[float]) -> RequestResult:
    end = start + ttft + sum(gaps)
    return RequestResult(start, end, True, ttft_seconds=ttft, itl_seconds=gaps, output_tokens=len(gaps) + 1)


def test_summary_counts_errors_goodput_and_throughput() -> None:
    results = [
        ok(0.0, 0.1, [0.02, 0.02, 0.02]),
        ok(0.0, 0.2, [0.02, 0.04]),
        ok(1.0, 0.9, [0.02]),  # TTFT misses the 0.5 s target
        ok(1.0, 0.1, [0.2, 0.2, 0.01]),  # its own p95 gap misses 50 ms
        RequestResult(0.0, 1.0, False, error="HTTP 500", error_detail="boom"),
        RequestResult(0.0, 2.0, False, error="timeout"),
        RequestResult(0.0, 2.0, False, error="timeout"),
    ]
    summary = summarize(results, SLO, wall_seconds=2.0)
    assert summary["requests"] == 7
    assert summary["completed"] == 4
    assert summary["errors"] == 3
    assert summary["error_kinds"] == {"HTTP 500": 1, "timeout": 2}
    assert summary["error_examples"]["HTTP 500"] == "boom"
    assert summary["request_throughput_rps"] == pytest.approx(2.0)
    assert summary["output_tokens"] == 4 + 3 + 2 + 4
    assert summary["output_throughput_tok_s"] == pytest.approx(13 / 2.0)
    assert summary["ttft_p50_s"] == pytest.approx(0.15)
    gaps = [0.02, 0.02, 0.02, 0.02, 0.04, 0.02, 0.2, 0.2, 0.01]
    assert summary["itl_p50_s"] == pytest.approx(percentile(gaps, 50))
    assert summary["goodput_fraction"] == pytest.approx(2 / 7)
    assert summary["goodput_rps"] == pytest.approx(1.0)
    assert summary["meets_slo"] is False  # errors and a slow p95


def test_level_within_slo_and_capacity_hint_picks_highest_sustained_load() -> None:
    fast = [ok(0.0, 0.1, [0.02] * 5) for _ in range(10)]
    levels = []
    for label, wall, results in (("concurrency 1", 10.0, fast), ("concurrency 4", 2.5, fast)):
        levels.append({"level": label, **summarize(results, SLO, wall)})
    slow = [ok(0.0, 3.0, [0.02] * 5) for _ in range(10)]
    levels.append({"level": "concurrency 16", **summarize(slow, SLO, 1.0)})
    assert [level["meets_slo"] for level in levels] == [True, True, False]
    hint = capacity_hint(levels)
    assert hint is not None
    assert hint["field"] == "spec.scaling.capacityHint"
    assert hint["requests_per_second"] == pytest.approx(4.0)
    assert hint["level"] == "concurrency 4"
    assert capacity_hint(levels[2:]) is None
    report = {
        "levels": levels,
        "slo": {"ttft_p95_s": 0.5, "itl_p95_s": 0.05},
        "percentile_method": "linear",
        "capacity_hint": hint,
    }
    table = render_table(report)
    assert "spec.scaling.capacityHint: 4" in table
    assert "concurrency 16" in table and "miss" in table


class FakeTty:
    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.text = ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass


def test_progress_bar_on_a_tty_and_plain_lines_otherwise() -> None:
    summary = {"completed": 4, "requests": 4, "errors": 0, "duration_s": 1.0}
    tty = FakeTty(True)
    progress = Progress(tty)  # type: ignore[arg-type]
    progress.begin("concurrency 2", 4)
    progress.update(4, 0, 0)
    progress.end(summary)
    # rich draws the bar with terminal control sequences, then the summary line stays
    assert "\x1b[" in tty.text
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", tty.text)
    assert "concurrency 2" in drawn and "4/4 done, 0 errors, 0 in flight" in drawn
    assert tty.text.rstrip().endswith("bench: concurrency 2: 4/4 ok, 0 errors, 1.0s")
    plain = FakeTty(False)
    progress = Progress(plain)  # type: ignore[arg-type]
    progress.begin("concurrency 2", 4)
    progress.update(4, 0, 0)
    progress.end(summary)
    assert "\r" not in plain.text
    assert plain.text.splitlines() == [
        "bench: concurrency 2: running",
        "bench: concurrency 2: 4/4 ok, 0 errors, 1.0s",
    ]


def test_trace_workload_takes_lengths_in_order_and_cycles(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp,input_tokens,output_tokens\n0,100,10\n1.5,200,20\n2,300,30\n")
    workload, info = trace_workload(str(trace))
    assert [workload(i) for i in range(4)] == [(100, 10), (200, 20), (300, 30), (100, 10)]
    assert info["trace_requests"] == 3 and info["mean_input_tokens"] == 200.0


def test_bad_trace_and_lengths_fail_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("when,in,out\n0,1,1\n")
    with pytest.raises(UserInputError, match=r"bad\.csv"):
        trace_workload(str(bad))
    with pytest.raises(UserInputError, match="--trace"):
        trace_workload(str(tmp_path / "missing.csv"))
    with pytest.raises(UserInputError, match="--input-tokens: value 0"):
        fixed_workload(0, 5)

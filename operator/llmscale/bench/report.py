"""What a benchmark run prints: progress on stderr, the table, the JSON, the capacity hint.

On a terminal the progress is a rich progress bar and the table a rich table; when the output
is a pipe or a file both are plain text (one line per level, an aligned table without
colours), and `--json` is the JSON document alone.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

CAPACITY_HINT_FIELD = "spec.scaling.capacityHint"
PROGRESS_INTERVAL_SECONDS = 0.1
PLAIN_TABLE_WIDTH = 240  # wide enough that no column of a plain table is ever wrapped


class Progress:
    """A rich progress bar on a TTY (redrawn at most 10 times a second); a line per level otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self._label = ""
        self._total: int | None = None
        self._drawn = 0.0
        self._bar: RichProgress | None = None
        self._task: Any = None

    def begin(self, label: str, total: int | None) -> None:
        self._label, self._total, self._drawn = label, total, 0.0
        if self.tty:
            self._bar = RichProgress(
                TextColumn("{task.description:>16}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("done, {task.fields[errors]} errors, {task.fields[in_flight]} in flight"),
                TimeElapsedColumn(),
                console=Console(file=self.stream, force_terminal=True),
                auto_refresh=False,  # redrawn from update(), throttled: no thread of its own
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, errors=0, in_flight=0)
        elif self.enabled:
            print(f"bench: {label}: running", file=self.stream, flush=True)

    def update(self, finished: int, errors: int, in_flight: int) -> None:
        if self._bar is None:
            return
        now = time.monotonic()
        if now - self._drawn < PROGRESS_INTERVAL_SECONDS and finished != self._total:
            return
        self._drawn = now
        self._bar.update(self._task, completed=finished, errors=errors, in_flight=in_flight)
        self._bar.refresh()

    def end(self, summary: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if not self.enabled:
            return
        print(
            f"bench: {self._label}: {summary['completed']}/{summary['requests']} ok, "
            f"{summary['errors']} errors, {summary['duration_s']:.1f}s",
            file=self.stream,
            flush=True,
        )


def capacity_hint(levels: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The highest request rate one replica sustained within the SLO (the levels that met it)."""
    within = [level for level in levels if level.get("meets_slo")]
    if not within:
        return None
    best = max(within, key=lambda level: level["request_throughput_rps"])
    return {
        "field": CAPACITY_HINT_FIELD,
        "requests_per_second": round(best["request_throughput_rps"], 3),
        "level": best["level"],
        "output_tokens_per_second": round(best["output_throughput_tok_s"], 1),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.0f}" if value >= 0.1 else f"{value * 1e3:.1f}"


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


HEADERS = (
    "level",
    "req",
    "err",
    "req/s",
    "out tok/s",
    "TTFT p50/p95/p99 ms",
    "ITL p50/p95/p99 ms",
    "e2e p50/p95 s",
    "goodput",
    "SLO",
)


def levels_table(report: dict[str, Any], *, terminal: bool) -> Table:
    """One row per load level; lines and colours only for a terminal."""
    table = Table(
        box=box.SIMPLE_HEAD if terminal else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if terminal else "",
    )
    for index, header in enumerate(HEADERS):
        table.add_column(header, justify="left" if index == 0 else "right", no_wrap=True)
    for level in report["levels"]:
        goodput = level["goodput_fraction"]
        verdict = Text("ok", style="green") if level["meets_slo"] else Text("miss", style="red")
        table.add_row(
            level["level"],
            str(level["requests"]),
            str(level["errors"]),
            f"{level['request_throughput_rps']:.2f}",
            f"{level['output_throughput_tok_s']:.0f}",
            "/".join(_ms(level[f"ttft_p{q}_s"]) for q in (50, 95, 99)),
            "/".join(_ms(level[f"itl_p{q}_s"]) for q in (50, 95, 99)),
            "/".join(_s(level[f"e2e_p{q}_s"]) for q in (50, 95)),
            "-" if goodput is None else f"{goodput:.0%}",
            verdict,
        )
    return table


def notes(report: dict[str, Any]) -> list[str]:
    """The lines under the table: the SLO, errors per kind, the capacity hint."""
    slo = report["slo"]
    lines = [
        "",
        f"SLO: TTFT p95 <= {_ms(slo['ttft_p95_s'])} ms, ITL p95 <= {_ms(slo['itl_p95_s'])} ms, no errors; "
        f"goodput = share of requests with TTFT and own p95 token gap within those targets. "
        f"Percentiles: {report['percentile_method']} interpolation.",
    ]
    for level in report["levels"]:
        for kind, count in sorted(level["error_kinds"].items()):
            example = level.get("error_examples", {}).get(kind, "")
            lines.append(
                f"errors at {level['level']}: {count} x {kind}" + (f" ({example})" if example else "")
            )
    hint = report.get("capacity_hint")
    if hint is None:
        lines.append("capacity hint: no level met the SLO; try lower concurrency or rates")
    else:
        lines.append(
            f"capacity hint: one replica sustains {hint['requests_per_second']:g} req/s within the SLO "
            f"(at {hint['level']}); set {CAPACITY_HINT_FIELD}: {hint['requests_per_second']:g}"
        )
    return lines


def render_table(report: dict[str, Any]) -> str:
    """The report as plain text: an aligned table without lines or colours, then the notes."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=PLAIN_TABLE_WIDTH, color_system=None, force_terminal=False)
    console.print(levels_table(report, terminal=False))
    table = "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())
    return "\n".join([table, *notes(report)])


def print_report(report: dict[str, Any], stream: TextIO = sys.stdout) -> None:
    """The table on a terminal (rich), or the plain text of `render_table` for a pipe or file."""
    console = Console(file=stream, highlight=False)
    if not console.is_terminal:
        print(render_table(report), file=stream)
        return
    console.print(levels_table(report, terminal=True))
    for line in notes(report):
        console.print(line, markup=False)

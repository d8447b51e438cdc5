"""What a benchmark run prints: progress on stderr, the table, the JSON, the capacity hint."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

CAPACITY_HINT_FIELD = "spec.scaling.capacityHint"
PROGRESS_INTERVAL_SECONDS = 0.1
BAR_WIDTH = 24


class Progress:
    """A one-line progress bar on a TTY (redrawn at most 10 times a second); a line per level otherwise."""

    def __init__(self, stream: TextIO = sys.stderr, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self._label = ""
        self._total: int | None = None
        self._started = 0.0
        self._drawn = 0.0

    def begin(self, label: str, total: int | None) -> None:
        self._label, self._total, self._started, self._drawn = label, total, time.monotonic(), 0.0
        if self.enabled and not self.tty:
            print(f"bench: {label}: running", file=self.stream, flush=True)

    def update(self, finished: int, errors: int, in_flight: int) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._drawn < PROGRESS_INTERVAL_SECONDS and finished != self._total:
            return
        self._drawn = now
        if self._total:
            filled = min(BAR_WIDTH, BAR_WIDTH * finished // self._total)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            count = f"{finished}/{self._total}"
        else:
            bar, count = "", str(finished)
        line = (
            f"\r{self._label:>16} [{bar}] {count} done, {errors} errors, "
            f"{in_flight} in flight, {now - self._started:5.1f}s"
        )
        self.stream.write(line)
        self.stream.flush()

    def end(self, summary: dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K")
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


def render_table(report: dict[str, Any]) -> str:
    headers = (
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
    rows: list[tuple[str, ...]] = []
    for level in report["levels"]:
        goodput = level["goodput_fraction"]
        rows.append(
            (
                level["level"],
                str(level["requests"]),
                str(level["errors"]),
                f"{level['request_throughput_rps']:.2f}",
                f"{level['output_throughput_tok_s']:.0f}",
                "/".join(_ms(level[f"ttft_p{q}_s"]) for q in (50, 95, 99)),
                "/".join(_ms(level[f"itl_p{q}_s"]) for q in (50, 95, 99)),
                "/".join(_s(level[f"e2e_p{q}_s"]) for q in (50, 95)),
                "-" if goodput is None else f"{goodput:.0%}",
                "ok" if level["meets_slo"] else "miss",
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    slo = report["slo"]
    lines.append("")
    lines.append(
        f"SLO: TTFT p95 <= {_ms(slo['ttft_p95_s'])} ms, ITL p95 <= {_ms(slo['itl_p95_s'])} ms, no errors; "
        f"goodput = share of requests with TTFT and own p95 token gap within those targets. "
        f"Percentiles: {report['percentile_method']} interpolation."
    )
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
    return "\n".join(lines)

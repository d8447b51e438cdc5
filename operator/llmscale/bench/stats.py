"""Percentiles and per-level summaries of a benchmark run.

Percentile method: linear interpolation between closest ranks (numpy's default, "type 7" in
Hyndman & Fan): for sorted samples x[0..n-1] the q-th percentile sits at rank (n-1)*q/100 and
is interpolated between its neighbours. So p50 of [1, 2, 3, 4] is 2.5 and p95 of 1..100 is
95.05. Inter-token latencies are pooled over all requests of a level (every gap between two
consecutive content chunks of a stream is one sample), as vLLM's benchmark_serving does.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmscale.percentile import PERCENTILE_METHOD, percentile

PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)


__all__ = ["PERCENTILE_METHOD", "percentile"]


@dataclass
class RequestResult:
    """One request as the client saw it. Times in seconds (monotonic clock)."""

    start_seconds: float
    end_seconds: float
    ok: bool
    error: str | None = None  # short kind: "HTTP 404", "timeout", "connection", ...
    error_detail: str | None = None
    ttft_seconds: float | None = None
    itl_seconds: list[float] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int = 0

    @property
    def e2e_seconds(self) -> float:
        return self.end_seconds - self.start_seconds

    @property
    def tpot_seconds(self) -> float | None:
        """Mean time per output token after the first (vLLM's TPOT)."""
        if self.ttft_seconds is None or self.output_tokens < 2:
            return None
        return (self.e2e_seconds - self.ttft_seconds) / (self.output_tokens - 1)


@dataclass(frozen=True)
class Slo:
    ttft_p95_seconds: float | None
    itl_p95_seconds: float | None

    def request_meets(self, result: RequestResult) -> bool:
        """Goodput test of one request: its TTFT, and the p95 of its own token gaps, within target."""
        if not result.ok or result.ttft_seconds is None:
            return False
        if self.ttft_p95_seconds is not None and result.ttft_seconds > self.ttft_p95_seconds:
            return False
        if self.itl_p95_seconds is not None and result.itl_seconds:
            request_itl = percentile(result.itl_seconds, 95)
            if request_itl is not None and request_itl > self.itl_p95_seconds:
                return False
        return True


def _distribution(prefix: str, samples: Sequence[float]) -> dict[str, float | None]:
    out: dict[str, float | None] = {f"{prefix}_mean_s": statistics.fmean(samples) if samples else None}
    for q in PERCENTILES:
        out[f"{prefix}_p{q}_s"] = percentile(samples, q)
    return out


def summarize(results: Sequence[RequestResult], slo: Slo, wall_seconds: float) -> dict[str, Any]:
    """The JSON keys of one load level (stable: documented in docs/bench.md)."""
    good = [r for r in results if r.ok]
    errors = [r for r in results if not r.ok]
    output_tokens = sum(r.output_tokens for r in good)
    prompt_tokens = sum(r.prompt_tokens for r in good)
    duration = max(wall_seconds, 1e-9)
    meeting = sum(1 for r in results if slo.request_meets(r))
    summary: dict[str, Any] = {
        "requests": len(results),
        "completed": len(good),
        "errors": len(errors),
        "error_kinds": dict(Counter(r.error or "error" for r in errors)),
        "error_examples": {r.error or "error": r.error_detail or "" for r in reversed(errors)},
        "duration_s": wall_seconds,
        "request_throughput_rps": len(good) / duration,
        "output_throughput_tok_s": output_tokens / duration,
        "prompt_throughput_tok_s": prompt_tokens / duration,
        "output_tokens": output_tokens,
    }
    summary.update(_distribution("ttft", [r.ttft_seconds for r in good if r.ttft_seconds is not None]))
    summary.update(_distribution("itl", [gap for r in good for gap in r.itl_seconds]))
    summary.update(_distribution("tpot", [t for r in good if (t := r.tpot_seconds) is not None]))
    summary.update(_distribution("e2e", [r.e2e_seconds for r in good]))
    summary["goodput_fraction"] = meeting / len(results) if results else None
    summary["goodput_rps"] = meeting / duration
    summary["meets_slo"] = level_meets_slo(summary, slo)
    return summary


def level_meets_slo(summary: dict[str, Any], slo: Slo, max_error_fraction: float = 0.0) -> bool:
    """A level is within the SLO when its p95s are within the targets and nothing failed."""
    if summary["requests"] == 0 or summary["completed"] == 0:
        return False
    if summary["errors"] > max_error_fraction * summary["requests"]:
        return False
    ttft, itl = summary["ttft_p95_s"], summary["itl_p95_s"]
    if slo.ttft_p95_seconds is not None and (ttft is None or ttft > slo.ttft_p95_seconds):
        return False
    return not (slo.itl_p95_seconds is not None and itl is not None and itl > slo.itl_p95_seconds)

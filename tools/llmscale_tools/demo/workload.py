"""The demo's request schedule: a bursty slice of a trace, time-compressed and thinned.

The slice is the window (of `duration x speedup` trace seconds) with the largest 10-second
burst among those that also contain a gap of at least `min_gap_seconds` (so scale-to-zero and a
wake-up can happen). Time is divided by `speedup`; then every k-th request is kept so that the
mean rate stays near `target_mean_rps` (a 2-core machine runs the emulated replicas too).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmscale.errors import UserInputError

MAX_PROMPT_TOKENS = 7000
"""Longer prompts are cut (the demo model serves 8k context)."""


@dataclass(frozen=True)
class Schedule:
    arrival_seconds: list[float]
    """Send times from the start of the replay, sorted."""
    input_tokens: list[int]
    output_tokens: list[int]
    trace_name: str
    trace_start_seconds: float
    speedup: float
    keep_every: int

    def __len__(self) -> int:
        return len(self.arrival_seconds)

    def to_json_dict(self) -> dict[str, object]:
        return {
            "trace": self.trace_name,
            "trace_start_seconds": round(self.trace_start_seconds, 1),
            "speedup": self.speedup,
            "keep_every": self.keep_every,
            "requests": len(self),
        }


def build_schedule(
    path: Path,
    *,
    duration_seconds: float,
    speedup: float,
    target_mean_rps: float = 1.5,
    min_gap_seconds: float = 150.0,
) -> Schedule:
    from llmscale.sim.traces import read_trace

    trace = read_trace(path)
    arrivals = np.asarray(trace.arrival_seconds, dtype=float)
    if len(arrivals) == 0:
        raise UserInputError(f"--trace: {path} has no requests")
    span = duration_seconds * speedup
    start = _bursty_start(arrivals, span, min_gap_seconds)
    mask = (arrivals >= start) & (arrivals < start + span)
    chosen = np.nonzero(mask)[0]
    if len(chosen) == 0:
        raise UserInputError(f"--trace: {path} has no requests in a {span:.0f}s window")
    mean_rps = len(chosen) / duration_seconds
    keep_every = max(1, math.ceil(mean_rps / target_mean_rps))
    chosen = chosen[::keep_every]
    return Schedule(
        arrival_seconds=[float((arrivals[i] - start) / speedup) for i in chosen],
        input_tokens=[int(min(max(1, trace.input_tokens[i]), MAX_PROMPT_TOKENS)) for i in chosen],
        output_tokens=[int(min(max(1, trace.output_tokens[i]), 512)) for i in chosen],
        trace_name=path.name,
        trace_start_seconds=start,
        speedup=speedup,
        keep_every=keep_every,
    )


def _bursty_start(arrivals: np.ndarray, span: float, min_gap_seconds: float) -> float:
    first, last = float(arrivals[0]), float(arrivals[-1])
    if last - first <= span:
        return first
    best_start, best_score = first, -1.0
    for start in np.arange(first, last - span, 60.0):
        window = arrivals[(arrivals >= start) & (arrivals < start + span)]
        if len(window) < 2:
            continue
        gaps = np.diff(np.concatenate(([start], window, [start + span])))
        counts = np.bincount(((window - start) // 10).astype(int))
        burst = float(counts.max())
        score = burst if gaps.max() >= min_gap_seconds else burst / 10.0
        if score > best_score:
            best_start, best_score = float(start), score
    return best_start

"""ServeGen rate curves (`chunk-<client>-trace.csv`) sampled into request arrivals.

Each row is one client's 10-minute window: `window_start_s, rate, cv, distribution, p1, p2`
(no header; an empty distribution means the client was idle). For every active window we
draw inter-arrival gaps from the fitted family with a seeded RNG and sum the clients.

Parameterisation (a documented choice): the family and its *shape* (`p1`) set the
burstiness, and the scale is chosen so that the mean gap is exactly 1 / rate. The published
second parameters are in units that do not match the rate column in every row, whereas the
shape reproduces the `cv` column (Gamma: cv = 1 / sqrt(shape)). `Exponential` ignores p1/p2.

Token lengths: the per-client length files were not shipped, so lengths are drawn from
log-normal distributions matching Azure conv 2023 (input p50 1020 / p90 2734, output
p50 129 / p90 424), clipped to [1, 7000] and [1, 1000] (Azure conv's output maximum)
so that every request fits an 8k-context model.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt

from llmscale.errors import TraceFormatError
from llmscale.sim.traces import Trace

FILE_PATTERN = re.compile(r"chunk-.+-trace\.csv$")
WINDOW_SECONDS = 600.0
INPUT_MEDIAN_TOKENS, INPUT_P90_TOKENS, INPUT_MAX_TOKENS = 1020.0, 2734.0, 7000
OUTPUT_MEDIAN_TOKENS, OUTPUT_P90_TOKENS, OUTPUT_MAX_TOKENS = 129.0, 424.0, 1000
_Z90 = 1.2815515655446004
_FAMILIES = {"gamma", "weibull", "exponential"}


def looks_like_servegen(path: Path) -> bool:
    if FILE_PATTERN.search(path.name):
        return True
    try:
        with path.open("r", encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError):
        return False
    cells = first.strip().split(",")
    if len(cells) != 6:
        return False
    try:
        float(cells[0])
        float(cells[1])
    except ValueError:
        return False
    return True


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*.csv") if FILE_PATTERN.search(p.name))
    if not files:
        raise TraceFormatError(
            str(path), None, "no chunk-*-trace.csv files; expected a ServeGen rate-curve directory"
        )
    return files


def _gaps(
    rng: np.random.Generator, family: str, shape: float, mean_gap: float, count: int
) -> npt.NDArray[np.float64]:
    if family == "gamma" and shape > 0:
        return rng.gamma(shape, mean_gap / shape, count)
    if family == "weibull" and shape > 0:
        return rng.weibull(shape, count) * (mean_gap / math.gamma(1.0 + 1.0 / shape))
    return rng.exponential(mean_gap, count)


def _window_arrivals(
    rng: np.random.Generator, start: float, end: float, rate: float, family: str, shape: float
) -> npt.NDArray[np.float64]:
    mean_gap = 1.0 / rate
    length = end - start
    # Start anywhere in a gap so windows do not all begin with an arrival.
    first = rng.uniform(0.0, mean_gap)
    expected = length * rate
    chunks: list[npt.NDArray[np.float64]] = []
    elapsed = first
    while elapsed < length:
        gaps = _gaps(rng, family, shape, mean_gap, int(expected * 1.2 + 3 * math.sqrt(expected) + 8))
        times = elapsed + np.concatenate(([0.0], np.cumsum(gaps[:-1])))
        chunks.append(times[times < length])
        elapsed = float(times[-1] + gaps[-1])
    return start + np.concatenate(chunks) if chunks else np.empty(0)


def _lognormal_tokens(
    rng: np.random.Generator, count: int, median: float, p90: float, maximum: int
) -> npt.NDArray[np.int64]:
    sigma = math.log(p90 / median) / _Z90
    values = rng.lognormal(math.log(median), sigma, count)
    return np.clip(np.rint(values), 1, maximum).astype(np.int64)


def read_servegen(
    path: Path,
    *,
    rate_scale: float = 1.0,
    duration_seconds: float | None = None,
    seed: int = 0,
    start_seconds: float = 0.0,
) -> Trace:
    """Arrivals of the windows in [start_seconds, start_seconds + duration_seconds), with the
    clock restarted at `start_seconds` (a whole number of days keeps the time of day)."""
    stop = None if duration_seconds is None else start_seconds + duration_seconds
    rng = np.random.default_rng(seed)
    pieces: list[npt.NDArray[np.float64]] = []
    for file_path in _files(path):
        for number, line in enumerate(file_path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            cells = line.split(",")
            if len(cells) < 4:
                raise TraceFormatError(
                    str(file_path),
                    number,
                    "expected 6 columns: window_start_s,rate,cv,distribution,param1,param2",
                )
            try:
                start = float(cells[0])
                rate = float(cells[1]) * rate_scale
                shape = float(cells[4]) if len(cells) > 4 and cells[4].strip() else 0.0
            except ValueError:
                raise TraceFormatError(
                    str(file_path), number, "window_start_s, rate and param1 must be numbers"
                ) from None
            if rate < 0 or not math.isfinite(rate):
                raise TraceFormatError(str(file_path), number, f"rate {cells[1]!r} is invalid; expected >= 0")
            family = cells[3].strip().lower()
            if stop is not None and start >= stop:
                break  # rows are in time order; the rest is past the cut
            if rate == 0 or not family or start + WINDOW_SECONDS <= start_seconds:
                continue
            if family not in _FAMILIES:
                raise TraceFormatError(
                    str(file_path),
                    number,
                    f"distribution {cells[3]!r} is unknown; expected Gamma, Weibull or Exponential",
                )
            end = start + WINDOW_SECONDS
            if stop is not None:
                end = min(end, stop)
            window = _window_arrivals(rng, start, end, rate, family, shape)
            pieces.append(window[window >= start_seconds])
    arrivals = np.sort(np.concatenate(pieces)) - start_seconds if pieces else np.empty(0)
    if len(arrivals) == 0:
        raise TraceFormatError(str(path), None, "no requests in the selected windows")
    count = len(arrivals)
    inputs = _lognormal_tokens(rng, count, INPUT_MEDIAN_TOKENS, INPUT_P90_TOKENS, INPUT_MAX_TOKENS)
    outputs = _lognormal_tokens(rng, count, OUTPUT_MEDIAN_TOKENS, OUTPUT_P90_TOKENS, OUTPUT_MAX_TOKENS)
    # Windows are absolute (from the start of the 14 days): that clock keeps the time of day.
    return Trace(path.name, arrivals, inputs, outputs, "servegen")

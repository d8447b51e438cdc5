"""The one percentile helper: linear interpolation between closest ranks.

Method: numpy's default `linear` (Hyndman & Fan type 7): the q-th percentile of n sorted values
sits at rank (n - 1) * q / 100, interpolated between its two neighbours. Pure Python, so the
operator does not load numpy for it. Reports that show percentiles name this method
(`PERCENTILE_METHOD`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

PERCENTILE_METHOD: Final = "linear"


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (q in 0..100) of `values` by linear interpolation; None when empty."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile: q={q} is outside 0..100")
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

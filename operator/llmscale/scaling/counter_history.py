"""Rates from a counter's own readings, for readers that sample it at irregular times.

Pure (no I/O), in the scaling layer: the operator's direct gateway read
(`metrics.gateway_scrape`) and the simulator's model of it (`sim.llmscale_policy`) share it, so
the backtest computes the same rates.
"""

from __future__ import annotations

import bisect
from collections import deque


class CounterHistory:
    """One counter's readings over the last `keep_seconds`, for rates over a window.

    A reading below the previous one means the counter restarted (its pod did): the history
    continues from the previous value, so the arrivals since the restart count and none are lost
    or invented.
    """

    def __init__(self, keep_seconds: float) -> None:
        self.keep_seconds = keep_seconds
        self._times: deque[float] = deque()
        self._totals: deque[float] = deque()
        self._offset = 0.0
        self._last_raw: float | None = None

    def add(self, now: float, value: float) -> None:
        if self._times and now <= self._times[-1]:
            return  # a second read at the same instant adds nothing
        if self._last_raw is not None and value < self._last_raw:
            self._offset += self._last_raw
        self._last_raw = value
        self._times.append(now)
        self._totals.append(value + self._offset)
        # keep one reading at least `keep_seconds` old, so a full window is always covered
        while len(self._times) >= 2 and self._times[1] <= now - self.keep_seconds:
            self._times.popleft()
            self._totals.popleft()

    def rate(self, window_seconds: float) -> float | None:
        """Per second over about `window_seconds` before the latest reading; None with one reading.

        The base is the earlier reading whose age is closest to the window; the increase since
        it is divided by its age, or by the window when it is younger than the window."""
        if len(self._times) < 2:
            return None
        now = self._times[-1]
        earlier = list(self._times)[:-1]
        at = bisect.bisect_right(earlier, now - window_seconds)
        candidates = [i for i in (at - 1, at) if 0 <= i < len(earlier)]
        base = min(candidates, key=lambda i: abs(now - earlier[i] - window_seconds))
        age = now - earlier[base]
        return (self._totals[-1] - self._totals[base]) / max(age, window_seconds)

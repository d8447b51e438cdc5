"""What Prometheus would show a policy: scraped gauges, counter rates, histogram quantiles.

The fleet simulator records, at the end of every simulation step, the fleet-wide counters
(cumulative), gauges and histogram bucket counts. A policy at time `now` sees the values of
the last scrape that Prometheus had ingested: scrapes happen every `scrape_interval_seconds`
and become visible `scrape_delay_seconds` later. Rates are `rate(x[window])` over the scraped
values; quantiles are `histogram_quantile` with vLLM's bucket bounds (linear inside a bucket).
"""

from __future__ import annotations

import bisect

import numpy as np
import numpy.typing as npt

# vLLM's vllm:time_to_first_token_seconds buckets (DESIGN.md section 4).
TTFT_BUCKETS_SECONDS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
# vllm:inter_token_latency_seconds buckets.
ITL_BUCKETS_SECONDS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip


def bucket_index(bounds: tuple[float, ...], value: float) -> int:
    """Index of the first bucket whose upper bound holds `value` (len(bounds) = +Inf)."""
    return bisect.bisect_left(bounds, value)


def histogram_quantile(
    quantile: float, bounds: tuple[float, ...], counts: npt.NDArray[np.float64]
) -> float | None:
    """Prometheus' histogram_quantile over non-cumulative bucket counts (last = +Inf)."""
    total = float(counts.sum())
    if total <= 0:
        return None
    rank = quantile * total
    cumulative = np.cumsum(counts)
    index = int(np.searchsorted(cumulative, rank, side="left"))
    if index >= len(bounds):
        return bounds[-1]  # in the +Inf bucket: Prometheus returns the highest finite bound
    lower = bounds[index - 1] if index > 0 else 0.0
    below = float(cumulative[index - 1]) if index > 0 else 0.0
    in_bucket = float(counts[index])
    fraction = (rank - below) / in_bucket if in_bucket > 0 else 1.0
    return lower + (bounds[index] - lower) * fraction


class MetricsRecorder:
    """Per-step fleet metrics, cumulative where Prometheus has counters."""

    def __init__(self, steps: int, step_seconds: float) -> None:
        self.step_seconds = step_seconds
        size = steps + 1
        # Counters (cumulative at the end of step k, index k + 1; index 0 = start).
        self.success = np.zeros(size)
        self.prompt_tokens = np.zeros(size)
        self.generation_tokens = np.zeros(size)
        self.arrivals = np.zeros(size)
        self.ttft_counts = np.zeros((size, len(TTFT_BUCKETS_SECONDS) + 1))
        self.itl_counts = np.zeros((size, len(ITL_BUCKETS_SECONDS) + 1))
        # Gauges at the end of step k (index k + 1).
        self.running = np.zeros(size)
        self.waiting = np.zeros(size)
        self.kv_usage = np.zeros(size)
        self.ready = np.zeros(size)
        self.provisioned = np.zeros(size)
        self.gateway_queue = np.zeros(size)
        self.recorded = 0  # steps recorded so far

    def record(
        self,
        step: int,
        *,
        success: int,
        prompt_tokens: float,
        generation_tokens: float,
        arrivals: int,
        ttft_counts: npt.NDArray[np.float64],
        itl_counts: npt.NDArray[np.float64],
        running: int,
        waiting: int,
        kv_usage: float,
        ready: int,
        provisioned: int,
        gateway_queue: int,
    ) -> None:
        k = step + 1
        self.success[k] = self.success[k - 1] + success
        self.prompt_tokens[k] = self.prompt_tokens[k - 1] + prompt_tokens
        self.generation_tokens[k] = self.generation_tokens[k - 1] + generation_tokens
        self.arrivals[k] = self.arrivals[k - 1] + arrivals
        self.ttft_counts[k] = self.ttft_counts[k - 1] + ttft_counts
        self.itl_counts[k] = self.itl_counts[k - 1] + itl_counts
        self.running[k] = running
        self.waiting[k] = waiting
        self.kv_usage[k] = kv_usage
        self.ready[k] = ready
        self.provisioned[k] = provisioned
        self.gateway_queue[k] = gateway_queue
        self.recorded = k

    def index_at(self, seconds: float) -> int:
        """Recorder index of the state at `seconds` (clamped to what was recorded)."""
        return max(0, min(self.recorded, int(seconds / self.step_seconds + 1e-9)))

    def rate(self, series: npt.NDArray[np.float64], end_seconds: float, window_seconds: float) -> float:
        end = self.index_at(end_seconds)
        start = self.index_at(end_seconds - window_seconds)
        span = (end - start) * self.step_seconds
        return float(series[end] - series[start]) / span if span > 0 else 0.0

    def window_counts(
        self, counts: npt.NDArray[np.float64], end_seconds: float, window_seconds: float
    ) -> npt.NDArray[np.float64]:
        end = self.index_at(end_seconds)
        start = self.index_at(end_seconds - window_seconds)
        result: npt.NDArray[np.float64] = counts[end] - counts[start]
        return result

    def any_ready(self, end_seconds: float, window_seconds: float) -> bool:
        end = self.index_at(end_seconds)
        start = self.index_at(end_seconds - window_seconds)
        return bool(self.ready[start : end + 1].max() > 0) if end >= start else False

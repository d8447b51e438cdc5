"""What Prometheus would show a policy: scraped gauges, counter rates, histogram quantiles.

The fleet simulator records, at the end of every simulation step, the fleet-wide counters
(cumulative), gauges and histogram bucket counts. `PrometheusModel` turns that record into what
a query at time `now` returns (see `PrometheusModel` for the rules and the defaults' sources).
Quantiles are `histogram_quantile` with vLLM's bucket bounds (linear inside a bucket).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

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
    """Per-step fleet metrics: counters cumulative (as Prometheus exports them), histogram
    buckets as per-step increments (summed over a query's range when asked), gauges as is."""

    def __init__(self, steps: int, step_seconds: float) -> None:
        self.step_seconds = step_seconds
        size = steps + 1
        # Counters (cumulative at the end of step k, index k + 1; index 0 = start).
        self.success = np.zeros(size)
        self.prompt_tokens = np.zeros(size)
        self.generation_tokens = np.zeros(size)
        self.arrivals = np.zeros(size)
        # Histogram bucket increments of step k at index k + 1 (last column = +Inf).
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
        self._totals = [0.0, 0.0, 0.0, 0.0]  # success, prompt, generation, arrivals

    def record(
        self,
        step: int,
        *,
        success: int,
        prompt_tokens: float,
        generation_tokens: float,
        arrivals: int,
        ttft_counts: Sequence[float] | npt.NDArray[np.float64] | None,
        itl_counts: Sequence[float] | npt.NDArray[np.float64] | None,
        running: int,
        waiting: int,
        kv_usage: float,
        ready: int,
        provisioned: int,
        gateway_queue: int,
    ) -> None:
        """One step's increments and gauges; histogram counts None = nothing observed."""
        k = step + 1
        totals = self._totals
        totals[0] += success
        totals[1] += prompt_tokens
        totals[2] += generation_tokens
        totals[3] += arrivals
        self.success[k] = totals[0]
        self.prompt_tokens[k] = totals[1]
        self.generation_tokens[k] = totals[2]
        self.arrivals[k] = totals[3]
        if ttft_counts is not None:
            self.ttft_counts[k] = ttft_counts
        if itl_counts is not None:
            self.itl_counts[k] = itl_counts
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

    def any_ready(self, end_seconds: float, window_seconds: float) -> bool:
        end = self.index_at(end_seconds)
        start = self.index_at(end_seconds - window_seconds)
        return bool(self.ready[start : end + 1].max() > 0) if end >= start else False


@dataclass(frozen=True)
class PrometheusModel:
    """The Prometheus between the fleet and every policy, with the defaults llmscale ships.

    * Engines are scraped every `engine_scrape_interval_seconds` (15 s: the PodMonitor the
      operator creates next to each vLLM Deployment, `llmscale.resources.service`), the gateway
      every `gateway_scrape_interval_seconds` (15 s: the chart's `monitoring.podMonitor.interval`,
      at most half the operator's rate window so that `rate()` has two samples).
      Scrapes happen at whole multiples of the interval from t = 0.
    * A query is answered `evaluation_lag_seconds` late (scrape, ingestion and query time;
      1 s, our choice): at time `now` it sees the samples up to `now - lag`.
    * `rate(x[W])` (W = `rate_window_seconds`, 30 s: the operator's default rate window) uses the
      samples in the left-open range (T - W, T]: with fewer than two samples it returns nothing
      (no series), else (last - first) / (time between them). Prometheus extrapolates the increase
      to the range's edges, which leaves this per-second figure unchanged.
    * Gauges are the last sample in the range; `histogram_quantile` works on the bucket increase
      between the first and the last sample.
    * Engine series exist only while a replica was Ready at the last scrape (at zero the
      engines export nothing); the gateway's series always exist.

    Example: engine interval 15 s, window 30 s, lag 1 s; at now = 100 s, T = 99 s, the range
    (69, 99] holds the samples at 75 and 90 s, so rate = (x(90) - x(75)) / 15.
    """

    engine_scrape_interval_seconds: float = 15.0
    gateway_scrape_interval_seconds: float = 15.0
    rate_window_seconds: float = 30.0
    evaluation_lag_seconds: float = 1.0

    def samples(self, now: float, interval: float) -> tuple[float, float] | None:
        """(first, last) sample times of a query's range at `now`; None with fewer than two."""
        at = now - self.evaluation_lag_seconds
        if at < 0:
            return None
        last = math.floor(at / interval + 1e-9) * interval
        first = (math.floor((at - self.rate_window_seconds) / interval + 1e-9) + 1) * interval
        first = max(first, 0.0)
        return (first, last) if last > first else None

    def last_sample(self, now: float, interval: float) -> float | None:
        at = now - self.evaluation_lag_seconds
        return math.floor(at / interval + 1e-9) * interval if at >= 0 else None


def counter_rate(
    recorder: MetricsRecorder, series: npt.NDArray[np.float64], span: tuple[float, float]
) -> float:
    """rate() between two sample times of `series` (cumulative)."""
    first, last = span
    return float(series[recorder.index_at(last)] - series[recorder.index_at(first)]) / (last - first)


def bucket_increase(
    recorder: MetricsRecorder, increments: npt.NDArray[np.float64], span: tuple[float, float]
) -> npt.NDArray[np.float64]:
    """Bucket counts observed between two sample times (from per-step increments)."""
    first, last = span
    result: npt.NDArray[np.float64] = increments[
        recorder.index_at(first) + 1 : recorder.index_at(last) + 1
    ].sum(axis=0)
    return result

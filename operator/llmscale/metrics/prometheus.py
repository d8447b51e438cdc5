"""The Prometheus adapter: `MetricsSource` over prometheus-api-client.

prometheus-api-client is synchronous (requests), so every query runs on a small private thread
pool, bounded twice: by the HTTP client's own timeout (no thread is left blocked forever) and by
`asyncio.wait_for` (the caller's event loop never waits longer than the budget). Every query
carries an explicit evaluation time (`time=` for instant queries, `start`/`end`/`step` for range
queries): the result must describe the instant the caller reasons about, not whenever the
request happened to land.

A tick sends one query per signal (11 in all) for every deployment at once, concurrently. If
any of them fails the whole tick raises `MetricsUnavailableError`: a snapshot with a hole in it
could look like idleness, and the scaling loop's answer to an error is the safe one (hold).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from llmscale.errors import MetricsUnavailableError
from llmscale.metrics.parse import NO_TRAFFIC, parse_instant_vector, parse_range_matrix
from llmscale.metrics.promql import QueryWindows, current_queries, history_queries
from llmscale.metrics.types import SIGNAL_NAMES, DemandHistory, DeploymentKey, DeploymentMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")

# Prometheus refuses range queries of more than 11,000 points per series; stay well below.
MAX_POINTS_PER_RANGE_QUERY = 10_000
MIN_HISTORY_STEP_SECONDS = 1.0

_CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # requests' RequestException (connection refused, read timeout) is an OSError
    PrometheusApiClientException,
    ValueError,  # a body that is not JSON (requests' JSONDecodeError is a ValueError)
    KeyError,  # JSON without data.result
    TypeError,
)


class PrometheusMetricsSource:
    """Reads per-deployment vLLM and gateway signals from one Prometheus server."""

    def __init__(
        self,
        url: str,
        *,
        windows: QueryWindows | None = None,
        timeout_seconds: float = 5.0,
        history_timeout_seconds: float = 30.0,
        max_concurrent_queries: int = len(SIGNAL_NAMES),
        headers: dict[str, str] | None = None,
    ) -> None:
        if not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds: {timeout_seconds!r} must be > 0")
        self.url = url.rstrip("/")
        self.windows = windows or QueryWindows()
        self.timeout_seconds = timeout_seconds
        self.history_timeout_seconds = history_timeout_seconds
        # One quick retry on a refused connection or a 502/503/504 from a proxy, none on a read
        # timeout (a slow Prometheus would double the tick). Anything longer is the scaling
        # loop's job: it retries next tick with backoff.
        retry = Retry(
            total=1, read=0, backoff_factor=0.0, status_forcelist=(502, 503, 504), raise_on_status=False
        )
        self._client = PrometheusConnect(url=self.url, headers=headers, retry=retry, timeout=timeout_seconds)
        self._executor = ThreadPoolExecutor(
            max_workers=max_concurrent_queries, thread_name_prefix="prometheus"
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    async def _call(self, what: str, budget_seconds: float, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._executor, fn), timeout=budget_seconds)
        except TimeoutError as exc:
            raise MetricsUnavailableError(
                f"prometheus {self.url}: {what}: no answer within {budget_seconds:g}s"
            ) from exc
        except _CLIENT_ERRORS as exc:
            raise MetricsUnavailableError(f"prometheus {self.url}: {what}: {exc}") from exc

    async def _instant(self, signal: str, query: str, now_seconds: float) -> object:
        def run() -> Any:
            return self._client.custom_query(
                query, params={"time": f"{now_seconds:.3f}"}, timeout=self.timeout_seconds
            )

        # wait_for's budget is a little above the HTTP timeout so the client's own error wins
        return await self._call(signal, self.timeout_seconds * 2 + 1.0, run)

    async def fetch_current(self, now_seconds: float) -> dict[DeploymentKey, DeploymentMetrics]:
        queries = current_queries(self.windows)
        results = await asyncio.gather(
            *(self._instant(signal, query, now_seconds) for signal, query in queries.items()),
            return_exceptions=True,
        )
        parsed: dict[str, dict[DeploymentKey, float | object | None]] = {}
        for signal, result in zip(queries, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, MetricsUnavailableError | asyncio.CancelledError):
                    raise result
                raise MetricsUnavailableError(f"prometheus {self.url}: {signal}: {result}") from result
            parsed[signal] = parse_instant_vector(signal, result)
        return assemble(parsed)

    async def fetch_history(
        self, start_seconds: float, end_seconds: float, step_seconds: float
    ) -> dict[DeploymentKey, DemandHistory]:
        if not step_seconds >= MIN_HISTORY_STEP_SECONDS:
            raise ValueError(f"step_seconds: {step_seconds!r} must be >= {MIN_HISTORY_STEP_SECONDS}")
        if step_seconds != int(step_seconds):
            # the client rounds start/end to whole seconds; a fractional step would drift off the grid
            raise ValueError(f"step_seconds: {step_seconds!r} must be a whole number of seconds")
        if not end_seconds >= start_seconds:
            raise ValueError(f"end_seconds: {end_seconds!r} is before start_seconds {start_seconds!r}")
        # Align to the step so that successive reads land on the same grid.
        grid_start = math.floor(start_seconds / step_seconds) * step_seconds
        chunks = _chunks(grid_start, end_seconds, step_seconds)
        queries = history_queries(step_seconds)
        jobs = [(signal, query, chunk) for signal, query in queries.items() for chunk in chunks]
        results = await asyncio.gather(
            *(self._range(signal, query, chunk, step_seconds) for signal, query, chunk in jobs)
        )
        points: dict[str, dict[DeploymentKey, dict[float, float]]] = {signal: {} for signal in queries}
        for (signal, _query, _chunk), result in zip(jobs, results, strict=True):
            for key, series in parse_range_matrix(signal, result).items():
                points[signal].setdefault(key, {}).update(series)
        timestamps = tuple(_grid(grid_start, end_seconds, step_seconds))
        keys = sorted({key for by_key in points.values() for key in by_key})
        return {
            key: DemandHistory(
                namespace=key[0],
                name=key[1],
                step_seconds=step_seconds,
                timestamps_seconds=timestamps,
                **{
                    signal: tuple(points[signal].get(key, {}).get(t) for t in timestamps)
                    for signal in queries
                },
            )
            for key in keys
        }

    async def _range(
        self, signal: str, query: str, chunk: tuple[float, float], step_seconds: float
    ) -> object:
        start, end = chunk

        def run() -> Any:
            return self._client.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, tz=UTC),
                end_time=datetime.fromtimestamp(end, tz=UTC),
                step=f"{step_seconds:g}s",
                timeout=self.history_timeout_seconds,
            )

        return await self._call(f"{signal} history", self.history_timeout_seconds * 2 + 1.0, run)


def assemble(
    parsed: dict[str, dict[DeploymentKey, float | object | None]],
) -> dict[DeploymentKey, DeploymentMetrics]:
    """Per-signal results -> per-deployment snapshots (a signal absent for a key is missing)."""
    keys = sorted({key for by_key in parsed.values() for key in by_key})
    snapshot: dict[DeploymentKey, DeploymentMetrics] = {}
    for key in keys:
        values: dict[str, float | None] = {}
        missing: set[str] = set()
        for signal in SIGNAL_NAMES:
            value = parsed.get(signal, {}).get(key)
            if isinstance(value, float):
                values[signal] = value
            else:
                values[signal] = None
                if value is not NO_TRAFFIC:
                    missing.add(signal)
        snapshot[key] = DeploymentMetrics.from_signals(key[0], key[1], values, frozenset(missing))
    return snapshot


def _grid(start: float, end: float, step: float) -> list[float]:
    count = math.floor((end - start) / step + 1e-9) + 1
    return [start + i * step for i in range(count)]


def _chunks(start: float, end: float, step: float) -> list[tuple[float, float]]:
    """Split [start, end] into ranges of at most MAX_POINTS_PER_RANGE_QUERY grid points."""
    span = step * (MAX_POINTS_PER_RANGE_QUERY - 1)
    chunks: list[tuple[float, float]] = []
    chunk_start = start
    while chunk_start <= end:
        chunk_end = min(end, chunk_start + span)
        chunks.append((chunk_start, chunk_end))
        chunk_start = chunk_end + step
    return chunks

"""Reading the gateway's own /metrics directly, for a demand signal that does not wait for Prometheus.

When the gateway is not scraped by Prometheus (it runs as a local process next to a local
cluster whose Prometheus only discovers pods), or when the loop wants the freshest possible queue
depth, the operator can read the gateway(s) directly. `GatewayScraper.read()` returns, per
deployment, the held-request count now and the arrival rate since the previous read (a counter
difference; the first read has no rate). Several gateways are summed.

`GatewayOverlaySource` wraps any `MetricsSource` and overlays these direct readings on its
`gateway_*` signals. A gateway that cannot be read leaves the wrapped source's values alone: the
engine-side signals still come from Prometheus, and a missing gateway signal keeps the deployment
from counting as idle, which is the safe direction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from llmscale.metrics.types import DemandHistory, DeploymentKey, DeploymentMetrics, MetricsSource

log = logging.getLogger(__name__)

ARRIVALS_SAMPLE = "llmscale_gateway_arrivals_total"
QUEUE_DEPTH = "llmscale_gateway_queue_depth"


@dataclass(frozen=True)
class GatewayReading:
    queue_depth: float
    arrivals_total: float
    arrivals_rps: float | None  # None on the first read (no previous sample to difference)


def parse_gateway_metrics(text: str) -> dict[DeploymentKey, tuple[float, float]]:
    """Exposition text -> key -> (queue depth, arrivals counter)."""
    values: dict[DeploymentKey, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # by sample name: the family name depends on how the TYPE line spells the counter
            if sample.name not in (ARRIVALS_SAMPLE, QUEUE_DEPTH):
                continue
            key = (sample.labels.get("namespace", ""), sample.labels.get("llmdeployment", ""))
            if not key[0] or not key[1]:
                continue
            slot = values.setdefault(key, [0.0, 0.0])
            slot[0 if sample.name == QUEUE_DEPTH else 1] += float(sample.value)
    return {key: (depth, arrivals) for key, (depth, arrivals) in values.items()}


class GatewayScraper:
    """Reads one or more gateways' /metrics; remembers the last counters to derive rates."""

    def __init__(self, urls: Sequence[str], timeout_seconds: float = 2.0) -> None:
        self.urls = [url.rstrip("/") for url in urls]
        self.timeout_seconds = timeout_seconds
        self._previous: dict[DeploymentKey, tuple[float, float]] = {}  # key -> (time, counter)

    async def _fetch(self, session: aiohttp.ClientSession, url: str) -> str:
        async with session.get(f"{url}/metrics") as resp:
            resp.raise_for_status()
            return await resp.text()

    async def read(self, now_seconds: float) -> dict[DeploymentKey, GatewayReading]:
        """Sum over gateways. Raises OSError/aiohttp.ClientError/TimeoutError if any is unreadable.

        All or nothing: a partial sum would under-count demand.
        """
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            texts = await asyncio.gather(*(self._fetch(session, url) for url in self.urls))
        totals: dict[DeploymentKey, tuple[float, float]] = {}
        for text in texts:
            for key, (depth, arrivals) in parse_gateway_metrics(text).items():
                old_depth, old_arrivals = totals.get(key, (0.0, 0.0))
                totals[key] = (old_depth + depth, old_arrivals + arrivals)
        readings: dict[DeploymentKey, GatewayReading] = {}
        for key, (depth, arrivals) in totals.items():
            rate: float | None = None
            previous = self._previous.get(key)
            if previous is not None and now_seconds > previous[0]:
                # a counter that went down means a gateway restarted: count from zero again
                delta = arrivals - previous[1] if arrivals >= previous[1] else arrivals
                rate = delta / (now_seconds - previous[0])
            self._previous[key] = (now_seconds, arrivals)
            readings[key] = GatewayReading(queue_depth=depth, arrivals_total=arrivals, arrivals_rps=rate)
        return readings


class GatewayOverlaySource:
    """A `MetricsSource` whose gateway signals come straight from the gateways' /metrics."""

    def __init__(self, inner: MetricsSource, scraper: GatewayScraper) -> None:
        self.inner = inner
        self.scraper = scraper

    async def fetch_current(self, now_seconds: float) -> dict[DeploymentKey, DeploymentMetrics]:
        snapshot = await self.inner.fetch_current(now_seconds)
        try:
            readings = await self.scraper.read(now_seconds)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("gateway /metrics unreadable (%s); using Prometheus' gateway series", exc)
            return snapshot
        merged = dict(snapshot)
        for key, reading in readings.items():
            base = merged.get(key) or DeploymentMetrics.empty(*key)
            missing = set(base.missing) - {"gateway_queue_depth"}
            if reading.arrivals_rps is not None:
                missing.discard("gateway_arrivals_rps")
            merged[key] = replace(
                base,
                gateway_queue_depth=reading.queue_depth,
                gateway_arrivals_rps=(
                    reading.arrivals_rps if reading.arrivals_rps is not None else base.gateway_arrivals_rps
                ),
                missing=frozenset(missing),
            )
        return merged

    async def fetch_history(
        self, start_seconds: float, end_seconds: float, step_seconds: float
    ) -> dict[DeploymentKey, DemandHistory]:
        return await self.inner.fetch_history(start_seconds, end_seconds, step_seconds)

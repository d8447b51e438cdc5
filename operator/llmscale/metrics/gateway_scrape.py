"""Reading the gateways' own /metrics directly, for a demand signal that does not wait for Prometheus.

Prometheus sees a burst at the gateway one scrape (15 s) plus a rate window later. The operator
can instead read every gateway pod's /metrics on each decision tick (`--gateway-metrics-url`,
the chart's headless gateway Service): `GatewayScraper.read()` returns, per deployment, the
held-request count now and arrival rates from each gateway pod's counter history, summed over
pods. The rate over the last decision interval is the panic window's signal
(`DecisionInputs.gateway_recent_arrivals_rps`, the scaling core's burst response).

Rates come from the history of readings, not from the previous read alone: the scraper is read
by every deployment's tick and by the urgent tick an activation triggers, so two reads can be
fractions of a second apart, and one arrival in 0.2 s would read as 5 requests per second (it
did: one held request at zero read as a sustained 5 rps and woke the deployment at its
maximum). `CounterHistory.rate(window)` takes the reading whose age is closest to the window
and divides the arrivals since then by that age, or by the whole window when the history is
younger than the window (what `increase()` over a window says, never a shorter span's rate).

A URL's host is resolved on every read and each address is read: a headless Service's name
resolves to every Ready gateway pod, so the sum follows the gateway's own scaling. IPv4
addresses are used when the name has any (a name like `localhost` resolves to both families
for one process), else IPv6. A pod seen for the first time contributes its queue but no rate
until its second read; a counter that went down (the pod restarted) counts from zero.

`GatewayOverlaySource` wraps any `MetricsSource` and overlays these direct readings on its
`gateway_*` signals: the queue depth now, the recent arrival rate, and the rate over the
operator's rate window only where Prometheus has none. A gateway that cannot be read leaves the
wrapped source's values alone: the engine-side signals still come from Prometheus, and a
missing gateway signal keeps the deployment from counting as idle, which is the safe direction.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from llmscale.api import defaults
from llmscale.errors import UserInputError
from llmscale.metrics.types import DemandHistory, DeploymentKey, DeploymentMetrics, MetricsSource
from llmscale.scaling.counter_history import CounterHistory

log = logging.getLogger(__name__)

ARRIVALS_SAMPLE = "llmscale_gateway_arrivals_total"
QUEUE_DEPTH = "llmscale_gateway_queue_depth"


@dataclass(frozen=True)
class GatewayReading:
    queue_depth: float
    arrivals_total: float
    arrivals_rps: float | None
    """Over the last decision interval; None until a pod has two readings."""
    windowed_rps: float | None = None
    """Over the rate window (Prometheus' `rate()` window); None until a pod has two readings."""


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


def check_gateway_url(url: str, field: str = "--gateway-metrics-url") -> str:
    """`url` without a trailing slash; one-line UserInputError naming `field` when it is not
    an http(s) URL with a host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserInputError(f"{field}: {url!r} is not an http(s) URL with a host (e.g. http://gateway:8080)")
    return url.rstrip("/")


def _host_url(scheme: str, address: str, port: int) -> str:
    host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    return f"{scheme}://{host}:{port}"


class GatewayScraper:
    """Reads every gateway pod behind one or more URLs; keeps each pod's counter readings."""

    def __init__(
        self,
        urls: Sequence[str],
        timeout_seconds: float = 2.0,
        *,
        recent_window_seconds: float = defaults.DECISION_INTERVAL_SECONDS,
        rate_window_seconds: float = 30.0,
    ) -> None:
        """`recent_window_seconds`: the decision interval (the panic window's signal);
        `rate_window_seconds`: the operator's PromQL rate window (the stable signal when
        Prometheus has no gateway series)."""
        self.urls = [check_gateway_url(url) for url in urls]
        self.timeout_seconds = timeout_seconds
        self.recent_window_seconds = recent_window_seconds
        self.rate_window_seconds = rate_window_seconds
        # (pod address URL, deployment) -> that pod's counter readings
        self._history: dict[tuple[str, DeploymentKey], CounterHistory] = {}

    async def targets(self) -> list[str]:
        """The base URL of every gateway pod, resolved now (sorted, without duplicates)."""
        loop = asyncio.get_running_loop()
        found: set[str] = set()
        for url in self.urls:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            infos = await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
            v4 = [str(info[4][0]) for info in infos if info[0] == socket.AF_INET]
            v6 = [str(info[4][0]) for info in infos if info[0] == socket.AF_INET6]
            found.update(_host_url(parts.scheme, address, port) for address in (v4 or v6))
        return sorted(found)

    async def _fetch(self, session: aiohttp.ClientSession, url: str) -> str:
        async with session.get(f"{url}/metrics") as resp:
            resp.raise_for_status()
            return await resp.text()

    async def read(self, now_seconds: float) -> dict[DeploymentKey, GatewayReading]:
        """Sum over gateway pods. Raises OSError/aiohttp.ClientError/TimeoutError if any is
        unreadable (or a name does not resolve). All or nothing: a partial sum would under-count
        demand."""
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        targets = await self.targets()
        async with aiohttp.ClientSession(timeout=timeout) as session:
            texts = await asyncio.gather(*(self._fetch(session, url) for url in targets))
        depth: dict[DeploymentKey, float] = {}
        total: dict[DeploymentKey, float] = {}
        recent: dict[DeploymentKey, float] = {}
        windowed: dict[DeploymentKey, float] = {}
        seen: set[tuple[str, DeploymentKey]] = set()
        keep = 1.5 * max(self.recent_window_seconds, self.rate_window_seconds)
        for target, text in zip(targets, texts, strict=True):
            for key, (queue, arrivals) in parse_gateway_metrics(text).items():
                depth[key] = depth.get(key, 0.0) + queue
                total[key] = total.get(key, 0.0) + arrivals
                history = self._history.setdefault((target, key), CounterHistory(keep))
                history.add(now_seconds, arrivals)
                for window, sums in (
                    (self.recent_window_seconds, recent),
                    (self.rate_window_seconds, windowed),
                ):
                    value = history.rate(window)
                    if value is not None:
                        sums[key] = sums.get(key, 0.0) + value
                seen.add((target, key))
        for gone in set(self._history) - seen:
            del self._history[gone]  # a pod that left (or a deployment it no longer serves)
        return {
            key: GatewayReading(
                queue_depth=depth[key],
                arrivals_total=total[key],
                arrivals_rps=recent.get(key),
                windowed_rps=windowed.get(key),
            )
            for key in depth
        }


class GatewayOverlaySource:
    """A `MetricsSource` whose gateway signals come straight from the gateways' /metrics."""

    def __init__(self, inner: MetricsSource, scraper: GatewayScraper) -> None:
        self.inner = inner
        self.scraper = scraper
        self.readable: bool | None = None  # the last read's outcome (logged when it changes)

    async def fetch_current(self, now_seconds: float) -> dict[DeploymentKey, DeploymentMetrics]:
        snapshot = await self.inner.fetch_current(now_seconds)
        readings = await self._read(now_seconds)
        return snapshot if readings is None else self._overlay(snapshot, readings)

    async def fetch_gateway_only(self, now_seconds: float) -> dict[DeploymentKey, DeploymentMetrics]:
        """What the gateways say while Prometheus does not answer: their signals, the engines'
        missing ({} when a gateway cannot be read either). The loop keeps deciding on it: the
        core adds replicas the gateway's arrivals and held requests call for, never removes."""
        readings = await self._read(now_seconds)
        return {} if readings is None else self._overlay({}, readings)

    async def _read(self, now_seconds: float) -> dict[DeploymentKey, GatewayReading] | None:
        try:
            readings = await self.scraper.read(now_seconds)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            if self.readable is not False:
                log.warning(
                    "gateway /metrics at %s unreadable (%s); using Prometheus' gateway series until it is",
                    ", ".join(self.scraper.urls),
                    exc or type(exc).__name__,
                )
            self.readable = False
            return None
        if self.readable is not True:
            log.info("reading the gateway's /metrics directly at %s", ", ".join(self.scraper.urls))
        self.readable = True
        return readings

    @staticmethod
    def _overlay(
        snapshot: dict[DeploymentKey, DeploymentMetrics], readings: dict[DeploymentKey, GatewayReading]
    ) -> dict[DeploymentKey, DeploymentMetrics]:
        merged = dict(snapshot)
        for key, reading in readings.items():
            base = merged.get(key) or DeploymentMetrics.empty(*key)
            missing = set(base.missing) - {"gateway_queue_depth"}
            windowed = base.gateway_arrivals_rps
            if "gateway_arrivals_rps" in base.missing and reading.windowed_rps is not None:
                # Prometheus has no gateway series (yet): the direct rate over its window
                windowed = reading.windowed_rps
                missing.discard("gateway_arrivals_rps")
            merged[key] = replace(
                base,
                gateway_queue_depth=reading.queue_depth,
                gateway_arrivals_rps=windowed,
                gateway_recent_arrivals_rps=reading.arrivals_rps,
                missing=frozenset(missing),
            )
        return merged

    async def fetch_history(
        self, start_seconds: float, end_seconds: float, step_seconds: float
    ) -> dict[DeploymentKey, DemandHistory]:
        return await self.inner.fetch_history(start_seconds, end_seconds, step_seconds)

"""Rate-limited activation signals: at most one per deployment per interval, never blocking a request.

A held request calls `request(key)`; the first call for a deployment fires the signal at once
(in a background task: the PATCH must not delay the request), later calls within the interval are
absorbed. While requests stay held they keep calling with the longer refresh interval, so an
operator that restarted, or a PATCH that failed, still learns about the demand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from llmscale.gateway.routing import DeploymentKey
from llmscale.gateway.sources import ActivationSignaller

log = logging.getLogger(__name__)


class ActivationThrottle:
    def __init__(
        self,
        signaller: ActivationSignaller,
        *,
        min_interval_seconds: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_result: Callable[[DeploymentKey, bool], None] | None = None,
    ) -> None:
        self._signaller = signaller
        self.min_interval_seconds = min_interval_seconds
        self._monotonic = monotonic
        self._wall_clock = wall_clock
        self._last_sent: dict[DeploymentKey, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.failed = 0
        self._on_result = on_result  # (key, succeeded) after each attempt, for /metrics

    def request(self, key: DeploymentKey, interval_seconds: float | None = None) -> bool:
        """Signal demand for `key` unless one was sent less than the interval ago. True if sent."""
        interval = max(self.min_interval_seconds, interval_seconds or 0.0)
        now = self._monotonic()
        last = self._last_sent.get(key)
        if last is not None and now - last < interval:
            return False
        self._last_sent[key] = now
        task = asyncio.get_running_loop().create_task(self._send(key, self._wall_clock()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _send(self, key: DeploymentKey, requested_at: datetime) -> None:
        try:
            await self._signaller.request_activation(key[0], key[1], requested_at)
            self.sent += 1
            if self._on_result is not None:
                self._on_result(key, True)
        except Exception as exc:  # a failed PATCH must never fail the held request
            self.failed += 1
            if self._on_result is not None:
                self._on_result(key, False)
            # forget the send so that the next held request (or refresh) retries at once
            self._last_sent.pop(key, None)
            log.warning("activation signal for %s/%s failed: %s", key[0], key[1], exc)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

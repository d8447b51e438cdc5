"""A background sampler for e2e tests: `sample()` every `period_seconds` until the block ends.

The e2e tests watch things that change between their own waits (a Deployment's replicas during
a hand-over, the engines a node runs, decisions that scroll out of status): a daemon thread
samples them, started and stopped by a `with` block, joined for at most five seconds.
"""

from __future__ import annotations

import threading
from typing import Self


class Sampler:
    period_seconds = 0.5

    def __init__(self) -> None:
        self.failed_samples = 0
        """Samples that raised: the API server and /proc are shared, a failed read is retried."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.period_seconds):
            try:
                self.sample()
            except Exception:
                self.failed_samples += 1

"""How far a Go build is: packages compiled of how many, time elapsed, what comes next.

`go build -v` / `go install -v` print each package's import path as it is compiled; the
build counts those lines against the package count `go list -deps` gave beforehand (packages
already in Go's build cache are not compiled again, so a warm build ends below the total and
the bar jumps to done). On a terminal this is a rich progress bar; otherwise, and for the
log of `make test`, one plain line every PLAIN_INTERVAL_SECONDS.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

PLAIN_INTERVAL_SECONDS = 30.0
# what `go build -v` prints for a compiled package: an import path, nothing else on the line
PACKAGE_LINE = re.compile(r"^[A-Za-z0-9_.\-~]+(/[A-Za-z0-9_.\-~+]+)*$")


def is_package_line(line: str) -> bool:
    return bool(PACKAGE_LINE.match(line.strip())) and not line.startswith("go:")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class BuildProgress:
    """Progress of one build step at a time (`begin` ... `line`* ... `end`).

    A bar on `stream` when it is a terminal; plain lines through `report` otherwise.
    """

    def __init__(
        self,
        report: Callable[[str], None],
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        plain_interval_seconds: float = PLAIN_INTERVAL_SECONDS,
    ) -> None:
        self.report = report
        self.clock = clock
        self.plain_interval_seconds = plain_interval_seconds
        console = Console(file=stream) if stream is not None else None
        self.console = console if console is not None and console.is_terminal else None
        self.label = ""
        self.next_up = ""
        self.total: int | None = None
        self.compiled = 0
        self.last_package = ""
        self._started = 0.0
        self._reported = 0.0
        self._bar: Progress | None = None
        self._task: Any = None

    def begin(self, label: str, total: int | None, next_up: str) -> None:
        self.label, self.total, self.next_up = label, total, next_up
        self.compiled, self.last_package = 0, ""
        self._started = self._reported = self.clock()
        of = f" of ~{total} packages" if total else ""
        self.report(f"{label}: compiling{of}; next: {next_up or 'nothing, this is the last'}")
        if self.console is not None:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[last]}", style="dim"),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, last="")

    def line(self, text: str) -> None:
        """One line of the go command's output."""
        if not is_package_line(text):
            return
        self.compiled += 1
        self.last_package = text.strip()
        if self._bar is not None:
            self._bar.update(self._task, completed=self.compiled, last=self.last_package)
            return
        now = self.clock()
        if now - self._reported >= self.plain_interval_seconds:
            self._reported = now
            self.report(self.status_line(now))

    def status_line(self, now: float) -> str:
        count = f"{self.compiled}/{self.total}" if self.total else str(self.compiled)
        percent = f" ({min(100, 100 * self.compiled // self.total)}%)" if self.total else ""
        return (
            f"{self.label}: {count} packages compiled{percent}, {_minutes(now - self._started)} elapsed, "
            f"last {self.last_package}; next: {self.next_up or 'done'}"
        )

    def end(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

"""The demo's live view: one table redrawn in place on a terminal, one line per sample otherwise.

On a terminal (rich `Live`) the view shows the request totals and the last
`LIVE_ROWS` one-second samples (load, replicas desired / provisioned / ready, the operator's
strategy and last reason, TTFT p95), newest at the bottom, redrawn after every sample; what the
demo says meanwhile (`DemoView.say`) is printed above it. Piped or redirected, each sample is
one plain line, so a log file reads as a timeline.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

LIVE_ROWS = 12


@dataclass(frozen=True)
class Totals:
    """Request counts so far, shown above the samples."""

    sent: int
    succeeded: int
    failed: int
    in_flight: int


def _ttft(sample: dict[str, Any]) -> str:
    return "-" if sample["ttft_p95_s"] is None else f"{sample['ttft_p95_s']:.2f}s"


def sample_line(sample: dict[str, Any]) -> str:
    """One sample as one plain line (the view when the output is not a terminal)."""
    return (
        f"t={sample['t']:5.0f}s  load {sample['load_rps']:3d} req/s  in-flight {sample['in_flight']:3d}  "
        f"replicas desired {sample['desired']} provisioned {sample['replicas']} ready {sample['ready']}  "
        f"{sample['strategy']:<11} {sample['reason']:<20} TTFT p95 {_ttft(sample)}"
    )


class DemoView:
    """Where the demo writes while it runs. Use as a context manager around the replay."""

    def __init__(self, stream: TextIO, title: str) -> None:
        self.console = Console(file=stream, highlight=False)
        self.title = title
        self.samples: deque[dict[str, Any]] = deque(maxlen=LIVE_ROWS)
        self.totals = Totals(0, 0, 0, 0)
        self._live: Live | None = None

    @property
    def live(self) -> bool:
        return self.console.is_terminal

    def __enter__(self) -> DemoView:
        if self.live:
            # redrawn on every sample (once a second): no refresh thread needed
            self._live = Live(self.render(), console=self.console, auto_refresh=False)
            self._live.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.stop()  # the last table stays on screen
            self._live = None

    def say(self, text: str) -> None:
        """A message: above the live table on a terminal, a plain line otherwise."""
        if self._live is not None:
            self._live.console.print(text, markup=False)
        else:
            print(text, file=self.console.file, flush=True)

    def show(self, sample: dict[str, Any], totals: Totals) -> None:
        self.samples.append(sample)
        self.totals = totals
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
        else:
            print(sample_line(sample), file=self.console.file, flush=True)

    def render(self) -> Group:
        totals = self.totals
        header = Text.assemble(
            (self.title, "bold"),
            f"   sent {totals.sent}  ok {totals.succeeded}  ",
            (f"failed {totals.failed}", "red" if totals.failed else ""),
            f"  in flight {totals.in_flight}",
        )
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
        for name in ("t (s)", "load req/s", "in flight", "desired", "provisioned", "ready"):
            table.add_column(name, justify="right", no_wrap=True)
        table.add_column("strategy", no_wrap=True)
        table.add_column("last reason", no_wrap=True)
        table.add_column("TTFT p95", justify="right", no_wrap=True)
        for sample in self.samples:
            ready_style = "yellow" if sample["ready"] < sample["desired"] else ""
            table.add_row(
                f"{sample['t']:.0f}",
                str(sample["load_rps"]),
                str(sample["in_flight"]),
                str(sample["desired"]),
                str(sample["replicas"]),
                Text(str(sample["ready"]), style=ready_style),
                str(sample["strategy"]),
                str(sample["reason"]),
                _ttft(sample),
            )
        return Group(header, table)

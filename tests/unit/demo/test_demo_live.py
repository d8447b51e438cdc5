"""The demo's live view: a table redrawn in place on a terminal, plain lines when piped."""

from __future__ import annotations

import io
import re

from rich.console import Console

from llmscale_tools.demo.live import LIVE_ROWS, DemoView, Totals

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def sample(t: int, ready: int = 1) -> dict[str, object]:
    return {
        "t": float(t), "load_rps": 3, "in_flight": 2, "desired": 2, "replicas": 2, "ready": ready,
        "strategy": "Autoscaled", "reason": "ScaleUp", "ttft_p95_s": 0.25 if t else None,
    }  # fmt: skip


def test_piped_output_is_one_plain_line_per_sample_and_messages_between() -> None:
    out = io.StringIO()
    with DemoView(out, "llmscale demo: Auto") as view:
        view.say("starting")
        view.show(sample(0), Totals(1, 0, 0, 1))
        view.show(sample(1), Totals(4, 2, 0, 2))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0] == "starting"
    assert "\x1b" not in out.getvalue()
    assert lines[1].startswith("t=    0s  load   3 req/s") and lines[1].endswith("TTFT p95 -")
    assert "replicas desired 2 provisioned 2 ready 1" in lines[2] and lines[2].endswith("TTFT p95 0.25s")


def test_terminal_redraws_one_table_in_place_with_the_latest_rows() -> None:
    out = Terminal()
    samples = LIVE_ROWS + 5
    with DemoView(out, "llmscale demo: Auto") as view:
        for t in range(samples):
            view.show(sample(t), Totals(t, t, 0, 1))
    text = out.getvalue()
    # redrawn, not scrolled: the cursor moves back up over the previous table each time
    assert text.count("\x1b[1A") >= samples
    # what stays on screen: the last LIVE_ROWS samples, oldest first
    final = io.StringIO()
    Console(file=final, width=160, color_system=None).print(view.render())
    rows = [line.split()[0] for line in final.getvalue().splitlines() if re.match(r"^\s*\d+\s+3\s+2\s", line)]
    assert rows == [str(t) for t in range(samples - LIVE_ROWS, samples)]
    assert f"sent {samples - 1}" in final.getvalue()


def test_render_marks_replicas_not_yet_ready() -> None:
    view = DemoView(Terminal(), "demo")
    view.show(sample(1, ready=0), Totals(1, 0, 1, 1))
    buffer = Terminal()
    Console(file=buffer, force_terminal=True, width=160).print(view.render())
    assert re.search(r"\x1b\[33m\s*0\x1b\[0m", buffer.getvalue())  # yellow: fewer ready than desired
    assert "failed 1" in ANSI.sub("", buffer.getvalue())

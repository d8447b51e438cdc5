"""The demo's PNG: load and TTFT over time above, replicas (desired, provisioned, ready) below."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_plot(path: Path, timeline: list[dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t"] for s in timeline]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    top.plot(t, [s["load_rps"] for s in timeline], color="tab:blue", label="requests sent / s")
    top.set_ylabel("load (req/s)")
    ttft_axis = top.twinx()
    ttft_axis.plot(
        t, [s["ttft_p95_s"] if s["ttft_p95_s"] is not None else float("nan") for s in timeline],
        color="tab:red", label="TTFT p95 (last 10 s)",
    )  # fmt: skip
    ttft_axis.set_ylabel("TTFT p95 (s)")
    top.legend(loc="upper left")
    ttft_axis.legend(loc="upper right")
    bottom.step(t, [s["desired"] for s in timeline], where="post", label="desired", color="tab:orange")
    bottom.step(t, [s["replicas"] for s in timeline], where="post", label="provisioned", color="tab:gray")
    bottom.step(t, [s["ready"] for s in timeline], where="post", label="ready", color="tab:green")
    bottom.set_ylabel("replicas")
    bottom.set_xlabel("seconds since replay start")
    bottom.legend(loc="upper left")
    top.set_title(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)

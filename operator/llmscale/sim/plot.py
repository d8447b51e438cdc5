"""The `simulate --plot` and `backtest --plot-dir` figure: load and replicas over time (one shared
time axis, in hours for runs longer than three hours), and GPU-hours vs SLO attainment with one
labelled marker per policy (labels listed in the legend, so they never overlap)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmscale.errors import UserInputError
from llmscale.sim.results import PolicyResult
from llmscale.sim.traces import Trace

HOURS_AFTER_SECONDS = 3 * 3600.0
MARKERS = "osD^vP*Xh<>p"


def require_matplotlib() -> None:
    """One UserInputError line when the `plot` extra is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError as exc:
        raise UserInputError("--plot needs matplotlib: pip install 'llmscale[plot]'") from exc


def check_writable(path: str) -> None:
    """One UserInputError line when `path` cannot be written or matplotlib is missing (checked
    before a run)."""
    require_matplotlib()
    target = Path(path)
    if not target.parent.is_dir():
        raise UserInputError(f"--plot: directory {str(target.parent)!r} does not exist")
    if (
        target.is_dir()
        or not os.access(target.parent, os.W_OK)
        or (target.exists() and not os.access(target, os.W_OK))
    ):
        raise UserInputError(f"--plot: value {path!r} is not a writable file path")


def write_plot(
    path: str,
    trace: Trace,
    results: Sequence[PolicyResult],
    slo_ttft_seconds: float,
    title: str | None = None,
) -> None:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # no display here, and never one in CI
    import matplotlib.pyplot as plt

    target = Path(path)
    if target.parent and not target.parent.exists():
        raise UserInputError(f"--plot: directory {str(target.parent)!r} does not exist")
    figure = build_figure(trace, results, slo_ttft_seconds, title)
    try:
        figure.savefig(target, dpi=90)
    except OSError as exc:
        raise UserInputError(f"--plot: cannot write {path!r}: {exc.strerror or exc}") from exc
    finally:
        plt.close(figure)


def build_figure(
    trace: Trace, results: Sequence[PolicyResult], slo_ttft_seconds: float, title: str | None = None
) -> Any:
    """The matplotlib Figure (axes: load, replicas, cost); the caller saves and closes it."""
    import matplotlib.pyplot as plt
    import numpy as np

    hours = trace.duration_seconds > HOURS_AFTER_SECONDS
    scale, unit = (3600.0, "hours") if hours else (60.0, "minutes")
    figure = plt.figure(figsize=(12, 11))
    grid = figure.add_gridspec(3, 1, height_ratios=(1, 1.3, 1.2))
    load_axis = figure.add_subplot(grid[0])
    replicas_axis = figure.add_subplot(grid[1], sharex=load_axis)
    cost_axis = figure.add_subplot(grid[2])
    bin_seconds = max(10.0, trace.duration_seconds / 600)
    if len(trace):
        bins = np.arange(0.0, trace.duration_seconds + bin_seconds, bin_seconds)
        counts, edges = np.histogram(trace.arrival_seconds, bins=bins)
        load_axis.plot(edges[:-1] / scale, counts / bin_seconds, color="black", linewidth=1)
    load_axis.set_ylabel("requests/s")
    load_axis.set_title(
        f"{title or trace.name}: {len(trace)} requests, SLO TTFT p95 <= {slo_ttft_seconds:g} s"
    )
    load_axis.tick_params(labelbottom=False)
    for result in results:
        times = np.asarray(result.series.get("time", []), dtype=np.float64)
        replicas = np.asarray(result.series.get("replicas", []), dtype=np.float64)
        if hours and len(times):
            # Days of 5-s ticks do not fit a panel: the mean count per bin, as a line.
            bin_of_tick = (times // bin_seconds).astype(np.int64)
            counts = np.bincount(bin_of_tick)
            sums = np.bincount(bin_of_tick, weights=replicas)
            kept = counts > 0
            centres = (np.flatnonzero(kept) + 0.5) * bin_seconds / scale
            replicas_axis.plot(centres, sums[kept] / counts[kept], label=result.name, linewidth=1)
        else:
            replicas_axis.step(times / scale, replicas, where="post", label=result.name, linewidth=1)
    replicas_axis.set_ylabel("replicas (provisioned)" + (", mean per bin" if hours else ""))
    replicas_axis.set_xlabel(unit)
    replicas_axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    for index, result in enumerate(results):
        cost_axis.scatter(
            result.gpu_hours, result.slo_attainment * 100, marker=MARKERS[index % len(MARKERS)], s=60,
            label=f"{result.name}: {result.slo_attainment * 100:.2f} % at {result.gpu_hours:.2f} GPU-h",
        )  # fmt: skip
    cost_axis.set_xlabel("GPU-hours")
    cost_axis.set_ylabel("SLO attainment %")
    cost_axis.grid(alpha=0.3)
    cost_axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    figure.tight_layout()
    return figure

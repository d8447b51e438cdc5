"""The `llmscale simulate --plot` figure: load and replicas over time, SLO vs GPU-hours."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from llmscale.errors import UserInputError
from llmscale.sim.results import PolicyResult
from llmscale.sim.traces import Trace


def write_plot(path: str, trace: Trace, results: Sequence[PolicyResult], slo_ttft_seconds: float) -> None:
    try:
        import matplotlib
    except ModuleNotFoundError as exc:
        raise UserInputError("--plot needs matplotlib: pip install 'llmscale[plot]'") from exc

    matplotlib.use("Agg")  # no display here, and never one in CI
    import matplotlib.pyplot as plt
    import numpy as np

    target = Path(path)
    if target.parent and not target.parent.exists():
        raise UserInputError(f"--plot: directory {str(target.parent)!r} does not exist")
    figure, (load_axis, replicas_axis, cost_axis) = plt.subplots(3, 1, figsize=(11, 11))
    bin_seconds = max(10.0, trace.duration_seconds / 500)
    if len(trace):
        bins = np.arange(0.0, trace.duration_seconds + bin_seconds, bin_seconds)
        counts, edges = np.histogram(trace.arrival_seconds, bins=bins)
        load_axis.plot(edges[:-1] / 60, counts / bin_seconds, color="black", linewidth=1)
    load_axis.set_ylabel("requests/s")
    load_axis.set_title(f"load: {trace.name} ({len(trace)} requests)")
    for result in results:
        minutes = [t / 60 for t in result.series.get("time", [])]
        replicas_axis.step(minutes, result.series.get("replicas", []), where="post", label=result.name)
    replicas_axis.set_ylabel("replicas (provisioned)")
    replicas_axis.set_xlabel("minutes")
    replicas_axis.legend(loc="upper right")
    for result in results:
        cost_axis.scatter(result.gpu_hours, result.slo_attainment * 100)
        cost_axis.annotate(result.name, (result.gpu_hours, result.slo_attainment * 100))
    cost_axis.set_xlabel("GPU-hours")
    cost_axis.set_ylabel(f"SLO attainment % (TTFT <= {slo_ttft_seconds:g} s)")
    figure.tight_layout()
    try:
        figure.savefig(target, dpi=90)
    except OSError as exc:
        raise UserInputError(f"--plot: cannot write {path!r}: {exc.strerror or exc}") from exc
    finally:
        plt.close(figure)

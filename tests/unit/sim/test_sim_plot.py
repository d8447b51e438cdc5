"""The plot: hours on the x-axis for long runs, one shared time axis, readable cost labels."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from llmscale.sim.plot import build_figure
from llmscale.sim.results import PolicyResult
from llmscale.sim.traces import Trace


def _trace(hours: float) -> Trace:
    arrivals = np.linspace(0.0, hours * 3600.0, 500)
    return Trace("t", arrivals, np.full(500, 100, np.int64), np.full(500, 10, np.int64), "generic")


def _result(name: str, hours: float) -> PolicyResult:
    times = [float(t) for t in np.arange(0.0, hours * 3600.0, 60.0)]
    series = {"time": times, "replicas": [1.0] * len(times)}
    return PolicyResult(name, 500, 0.99, 0.2, 1.0 + len(name) / 10, 1, 1, 0, series=series)


def setup_module() -> None:
    plt.switch_backend("Agg")  # never a display in tests


def test_a_three_day_run_is_in_hours_with_a_shared_axis() -> None:
    results = [_result(name, 72.0) for name in ("llmscale", "hpa", "hpa-tuned", "oracle")]
    figure = build_figure(_trace(72.0), results, 1.0)
    load, replicas, cost = figure.axes[:3]
    assert replicas.get_xlabel() == "hours"
    assert load.get_shared_x_axes().joined(load, replicas)
    assert replicas.get_xlim()[1] < 80  # 72 h, not 4,320 minutes
    # Every policy is named once in the cost panel's legend (no overlapping point labels).
    labels = [text.get_text() for text in cost.get_legend().get_texts()]
    assert [label.split(":")[0] for label in labels] == ["llmscale", "hpa", "hpa-tuned", "oracle"]
    assert not cost.texts
    plt.close(figure)


def test_a_short_run_is_in_minutes() -> None:
    figure = build_figure(_trace(0.5), [_result("hpa", 0.5)], 1.0)
    assert figure.axes[1].get_xlabel() == "minutes"
    plt.close(figure)

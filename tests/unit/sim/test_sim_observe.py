"""The Prometheus view: histogram_quantile and windowed rates as Prometheus computes them."""

from __future__ import annotations

import numpy as np
import pytest

from llmscale.sim.observe import MetricsRecorder, histogram_quantile

BOUNDS = (0.1, 0.5, 1.0)


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    counts = np.array([0.0, 10.0, 0.0, 0.0])  # all in (0.1, 0.5]
    assert histogram_quantile(0.5, BOUNDS, counts) == pytest.approx(0.3)
    assert histogram_quantile(0.95, BOUNDS, counts) == pytest.approx(0.48)


def test_histogram_quantile_in_the_inf_bucket_and_empty() -> None:
    assert histogram_quantile(0.95, BOUNDS, np.array([1.0, 0.0, 0.0, 99.0])) == 1.0
    assert histogram_quantile(0.95, BOUNDS, np.zeros(4)) is None


def test_rate_over_a_window_of_recorded_steps() -> None:
    recorder = MetricsRecorder(steps=120, step_seconds=1.0)
    for step in range(120):
        recorder.record(
            step, success=2, prompt_tokens=100.0, generation_tokens=50.0, arrivals=3,
            ttft_counts=np.zeros(23), itl_counts=np.zeros(20), running=4, waiting=0, kv_usage=0.1,
            ready=1, provisioned=1, gateway_queue=0,
        )  # fmt: skip
    assert recorder.rate(recorder.success, 120.0, 60.0) == pytest.approx(2.0)
    assert recorder.rate(recorder.prompt_tokens, 90.0, 60.0) == pytest.approx(100.0)
    assert recorder.any_ready(60.0, 60.0)

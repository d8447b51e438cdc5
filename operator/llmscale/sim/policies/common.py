"""Helpers shared by the baseline policies."""

from __future__ import annotations

from llmscale.sim.perfmodel import ReplicaPerformanceModel


def concurrency_at(
    model: ReplicaPerformanceModel, rps: float, mean_input: float, mean_output: float
) -> float:
    """Requests in flight on one replica serving `rps` (Little's law on the step model)."""
    batch = 1.0
    for _ in range(50):  # fixed point: batch = rps x (prefill + output x step(batch))
        step = model.decode_step_seconds(max(1, round(batch)), int(batch * (mean_input + mean_output / 2)))
        latency = model.prefill_seconds(int(mean_input)) + max(0.0, mean_output - 1) * step
        batch = min(float(model.max_num_seqs), max(1.0, rps * latency))
    return batch

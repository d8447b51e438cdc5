"""Request lengths of a benchmark: fixed, or sampled in order from a trace file."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmscale.bench.load import Workload
from llmscale.errors import UserInputError


def fixed_workload(input_tokens: int, output_tokens: int) -> tuple[Workload, dict[str, Any]]:
    if input_tokens < 1:
        raise UserInputError(f"--input-tokens: value {input_tokens} must be >= 1")
    if output_tokens < 1:
        raise UserInputError(f"--output-tokens: value {output_tokens} must be >= 1")
    info = {"source": "fixed", "input_tokens": input_tokens, "output_tokens": output_tokens}
    return (lambda _index: (input_tokens, output_tokens)), info


def lengths_workload(path: str, lengths: Sequence[tuple[int, int]]) -> tuple[Workload, dict[str, Any]]:
    """Request i gets the i-th (input, output) pair of the trace, cycling when the run is longer."""
    usable = [(max(1, i), max(1, o)) for i, o in lengths]
    if not usable:
        raise UserInputError(f"--trace: {path} has no requests")
    mean_in = sum(i for i, _ in usable) / len(usable)
    mean_out = sum(o for _, o in usable) / len(usable)
    info = {
        "source": "trace",
        "trace": path,
        "trace_requests": len(usable),
        "mean_input_tokens": round(mean_in, 1),
        "mean_output_tokens": round(mean_out, 1),
    }
    return (lambda index: usable[index % len(usable)]), info


def trace_workload(path: str, max_model_len: int | None = None) -> tuple[Workload, dict[str, Any]]:
    """Lengths from a trace in any format llmscale reads (generic CSV, Azure CSV, Mooncake JSONL)."""
    from llmscale.sim.traces import read_trace

    trace = read_trace(path)
    lengths = list(zip(trace.input_tokens, trace.output_tokens, strict=True))
    if max_model_len is not None:
        lengths = [(i, o) for i, o in lengths if i + o <= max_model_len]
    return lengths_workload(path, [(int(i), int(o)) for i, o in lengths])

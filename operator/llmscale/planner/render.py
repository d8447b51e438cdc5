"""Human-readable tables for `llmscale plan` (the --json output is Plan.to_json_dict())."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmscale.planner.gpus import GPUSpec
from llmscale.planner.plan import Plan


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> str:
    widths = [
        max(len(headers[i]), *(len(row[i]) for row in rows)) if rows else len(headers[i])
        for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def _milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def render_plan(result: Plan) -> str:
    verdict = "FITS" if result.fits else "DOES NOT FIT"
    rows = [
        ("model", result.model),
        ("gpu", f"{result.gpus} x {result.gpu} ({result.gpu_memory_gib:.2f} GiB each)"),
        ("verdict", verdict + (f": {result.reason}" if result.reason else "")),
        ("tensor parallel size", str(result.tensor_parallel_size)),
        ("nodes per replica", _nodes(result)),
        (
            "quantization / dtype",
            f"{result.quantization} / {result.dtype} (kv cache {result.kv_cache_dtype})",
        ),
        ("parameters", _parameters(result)),
        ("weights", f"{result.weights_gib:.2f} GiB total, {result.weights_per_gpu_gib:.2f} GiB per GPU"),
        (
            "per-GPU budget",
            f"{result.usable_memory_per_gpu_gib:.2f} GiB usable ({result.gpu_memory_utilization:g} x "
            f"{result.gpu_memory_gib:.2f}) - weights {result.weights_per_gpu_gib:.2f} - activations "
            f"{result.activation_peak_per_gpu_gib:.2f} - cuda graphs {result.cuda_graph_per_gpu_gib:.2f} - "
            f"non-torch {result.non_torch_per_gpu_gib:.2f}",
        ),
        ("kv cache", f"{result.kv_cache_gib:.2f} GiB = {result.kv_cache_blocks} blocks of 16 tokens"),
        ("kv bytes per token", f"{result.kv_bytes_per_token} ({result.kv_bytes_per_token / 1024:.0f} KiB)"),
        ("kv cache tokens", f"{result.kv_cache_tokens}"),
        ("max model len", f"{result.max_model_len} (model maximum {result.model_max_len})"),
        ("longest context that fits", f"{result.max_fitting_model_len}"),
        (
            "full-length sequences",
            f"{result.max_concurrent_sequences} (vLLM max_num_seqs {result.max_num_seqs})",
        ),
        ("itl floor", _milliseconds(result.itl_floor_seconds)),
        (
            "gpu cost",
            f"${result.gpu_cost_per_hour:.2f}/h ({result.gpus} x ${result.gpu_price_per_hour_usd:.2f})",
        ),
    ]
    if result.inter_node_note:
        rows.append(("inter-node cost", result.inter_node_note))
    rows.extend(("note", note) for note in result.notes)
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


def _nodes(result: Plan) -> str:
    if result.nodes_per_replica == 1:
        return f"1 (allowed up to {result.max_nodes_per_replica})"
    return (
        f"{result.nodes_per_replica} x {result.gpus_per_node} GPUs (pipeline parallel "
        f"{result.pipeline_parallel_size}; allowed up to {result.max_nodes_per_replica})"
    )


def _parameters(result: Plan) -> str:
    text = f"{result.parameter_count / 1e9:.2f} B"
    if result.active_parameter_count != result.parameter_count:
        text += f" ({result.active_parameter_count / 1e9:.2f} B active per token)"
    return text


def render_compare(model_names: Sequence[str], rows: Sequence[dict[str, Any]]) -> str:
    several = len(model_names) > 1
    headers = [
        "gpu",
        "quant",
        "fits",
        "tp",
        "weights GiB",
        "kv tokens",
        "max ctx",
        "seqs",
        "itl floor",
        "$/h",
    ]
    if several:
        headers.insert(0, "model")
    body: list[list[str]] = []
    notes: list[str] = []
    for row in rows:
        if "error" in row:
            cells = [row["gpu"], row["quantization"], "n/a", "", "", "", "", "", "", ""]
            notes.append(f"{row['gpu']} {row['quantization']}: {row['error']}")
        else:
            cells = [
                row["gpu"],
                row["quantization"],
                "yes" if row["fits"] else "no",
                str(row["tensor_parallel_size"]),
                f"{row['weights_gib']:.1f}",
                str(row["kv_cache_tokens"]),
                str(row["max_fitting_model_len"]),
                str(row["max_concurrent_sequences"]),
                _milliseconds(row["itl_floor_seconds"]),
                f"{row['gpu_cost_per_hour']:.2f}",
            ]
        if several:
            cells.insert(0, str(row["model"]).split("/")[-1])
        body.append(cells)
    max_len = next((row["max_model_len"] for row in rows if "max_model_len" in row), None)
    title = ", ".join(model_names) if not several else "comparison"
    title += f" at max-model-len {max_len}" if max_len else ""
    first_number = 4 if several else 3
    text = title + "\n" + _table(headers, body, right=frozenset(range(first_number, len(headers))))
    text += "\nseqs = full-length sequences that fit at once; max ctx = longest context with room for one"
    if notes:
        text += "\n" + "\n".join(f"n/a {note}" for note in notes)
    return text


def render_gpus(specs: Sequence[GPUSpec]) -> str:
    headers = ["name", "memory GiB", "HBM TB/s", "$/GPU-hour", "nvidia.com/gpu.product"]
    body = [
        [
            spec.name,
            f"{spec.memory_gib:.2f}",
            f"{spec.hbm_bandwidth_bytes_per_second / 1e12:.2f}",
            f"{spec.price_per_hour_usd:.2f}",
            spec.gfd_product,
        ]
        for spec in specs
    ]
    return _table(headers, body, right=frozenset({1, 2, 3})) + "\n"

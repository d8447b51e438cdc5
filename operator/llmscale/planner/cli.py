"""`llmscale plan`: size a model for vLLM on a GPU type, or compare quantisations and GPUs.

Exit status: 0 when the model fits (with --compare: when at least one combination fits),
1 when it does not fit, 2 on bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_FITS = 0
EXIT_DOES_NOT_FIT = 1

DEFAULT_MAX_NODES = 4  # planner.pipeline.DEFAULT_MAX_NODES_PER_REPLICA (kept import-free here)
COMPARE_QUANTIZATIONS = ("auto", "fp8", "int8", "awq", "gptq", "bitsandbytes")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "plan",
        help="will a model fit a GPU under vLLM: weights, KV cache, tensor parallel, latency floor, cost",
        description=(
            "Plan serving a model with vLLM on a GPU type. Exit status 0 when it fits, 1 when it does "
            "not, 2 on bad input."
        ),
    )
    p.add_argument("--model", help="catalog name or Hugging Face id (any case), or a path to a config.json")
    p.add_argument(
        "--gpu",
        help="GPU catalog name (H100-80GB, A100-80GB, L4, ...); with --compare a comma-separated list "
        "(default: every GPU)",
    )
    p.add_argument(
        "--gpus", type=int, help="plan exactly this many GPUs (tensor parallel); default: smallest fit"
    )
    p.add_argument(
        "--nodes",
        type=int,
        help="plan exactly this many nodes per replica (pipeline parallel across nodes, --gpus each)",
    )
    p.add_argument(
        "--max-nodes",
        type=int,
        default=DEFAULT_MAX_NODES,
        help="most nodes one replica may span when no single node fits (vLLM's multi-node layout: "
        f"tensor parallel within a node, pipeline parallel across nodes; default {DEFAULT_MAX_NODES}; "
        "1 = single-node only)",
    )
    p.add_argument(
        "--quantization", help="fp32, bf16, fp16, fp8, int8, awq, gptq, bitsandbytes (default: none)"
    )
    p.add_argument(
        "--max-model-len", type=int, help="context length to plan for (default: the model's maximum)"
    )
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM's fraction of GPU memory")
    p.add_argument("--kv-cache-dtype", default="auto", help="auto (= model dtype) or fp8")
    p.add_argument("--dtype", default="auto", help="auto (vLLM's rule), bfloat16, float16 or float32")
    p.add_argument(
        "--max-num-batched-tokens", type=int, help="vLLM's prefill chunk (default: vLLM's for the GPU)"
    )
    p.add_argument(
        "--max-num-seqs", type=int, help="vLLM's running-sequence cap (default: vLLM's for the GPU)"
    )
    p.add_argument("--enforce-eager", action="store_true", help="no CUDA graphs (vLLM --enforce-eager)")
    p.add_argument("--price-per-hour", type=float, help="override the GPU's price in USD per GPU-hour")
    p.add_argument(
        "--compare",
        action="store_true",
        help="table across quantisations (or the one given) and GPUs (the --gpu list, default every GPU)",
    )
    p.add_argument("--list-models", action="store_true", help="print the model catalog and exit")
    p.add_argument("--list-gpus", action="store_true", help="print the GPU catalog and exit")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmscale.errors import UserInputError

    if args.list_models:
        return _list_models(args)
    if args.list_gpus:
        return _list_gpus(args)
    if not args.model:
        raise UserInputError("--model: missing; expected a model name or a config.json path")
    if args.compare:
        return _compare(args)
    if not args.gpu:
        raise UserInputError("--gpu: missing; expected a GPU catalog name such as H100-80GB or L4")
    from llmscale.planner.plan import plan

    result = plan(
        args.model,
        args.gpu,
        gpus=args.gpus,
        quantization=args.quantization,
        max_model_len=args.max_model_len,
        gpu_memory_utilization=args.gpu_memory_utilization,
        kv_cache_dtype=args.kv_cache_dtype,
        dtype=args.dtype,
        gpu_price_per_hour_usd=args.price_per_hour,
        max_num_batched_tokens=args.max_num_batched_tokens,
        max_num_seqs=args.max_num_seqs,
        enforce_eager=args.enforce_eager,
        nodes=args.nodes,
        max_nodes=args.max_nodes,
    )
    if args.json:
        print(json.dumps(result.to_json_dict(), indent=2))
    else:
        from llmscale.planner.render import render_plan

        print(render_plan(result))
    return EXIT_FITS if result.fits else EXIT_DOES_NOT_FIT


def _compare(args: argparse.Namespace) -> int:
    from llmscale.planner.catalog import resolve_model
    from llmscale.planner.gpus import GPU_CATALOG, get_gpu
    from llmscale.planner.plan import check_gpu_count
    from llmscale.planner.render import render_compare

    if args.gpus is not None:
        check_gpu_count(args.gpus)  # a bad count is bad input, not a table of n/a rows
    # --model may list several models (comma-separated) in a comparison.
    architectures = [resolve_model(name.strip()) for name in args.model.split(",") if name.strip()]
    gpu_names = (
        [name.strip() for name in args.gpu.split(",") if name.strip()] if args.gpu else list(GPU_CATALOG)
    )
    gpus = [get_gpu(name) for name in gpu_names]
    rows: list[dict[str, Any]] = []
    for architecture in architectures:
        quantizations = [args.quantization] if args.quantization else list(COMPARE_QUANTIZATIONS)
        if architecture.checkpoint_quantization and not args.quantization:
            quantizations = ["auto"]  # a pre-quantised checkpoint has exactly one way to load
        for gpu in gpus:
            rows.extend(
                _compare_row(args, architecture, gpu, quantization, several=len(architectures) > 1)
                for quantization in quantizations
            )
    any_fits = any(row.get("fits") for row in rows)
    if args.json:
        print(json.dumps({"models": [a.name for a in architectures], "plans": rows}, indent=2))
    else:
        print(render_compare([a.name for a in architectures], rows))
    return EXIT_FITS if any_fits else EXIT_DOES_NOT_FIT


def _compare_row(
    args: argparse.Namespace, architecture: Any, gpu: Any, quantization: str, *, several: bool
) -> dict[str, Any]:
    from llmscale.errors import UserInputError
    from llmscale.planner.plan import ContextTooLongError, plan

    try:
        result = plan(
            architecture,
            gpu,
            gpus=args.gpus,
            quantization=None if quantization == "auto" else quantization,
            max_model_len=args.max_model_len,
            gpu_memory_utilization=args.gpu_memory_utilization,
            kv_cache_dtype=args.kv_cache_dtype,
            dtype=args.dtype,
            gpu_price_per_hour_usd=args.price_per_hour,
            max_num_batched_tokens=args.max_num_batched_tokens,
            max_num_seqs=args.max_num_seqs,
            enforce_eager=args.enforce_eager,
            nodes=args.nodes,
            max_nodes=args.max_nodes,
        )
    except ContextTooLongError:
        if not several:
            raise  # the one model asked about cannot take this context: that is the answer
        return {"model": architecture.name, "gpu": gpu.name, "quantization": quantization, "error": "context"}
    except UserInputError as exc:
        # An impossible combination (fp8 on a T4, --gpus that does not divide the heads)
        # is a row of the comparison, not the end of it.
        return {"model": architecture.name, "gpu": gpu.name, "quantization": quantization, "error": str(exc)}
    return result.to_json_dict()


def _list_models(args: argparse.Namespace) -> int:
    from llmscale.planner.catalog import KNOWN_MODELS, MODEL_ALIASES

    if args.json:
        print(json.dumps({"models": list(KNOWN_MODELS), "aliases": MODEL_ALIASES}, indent=2))
        return 0
    width = max(map(len, MODEL_ALIASES))
    for alias, hf_id in MODEL_ALIASES.items():
        print(f"{alias:<{width}}  {hf_id}")
    others = [hf_id for hf_id in KNOWN_MODELS if hf_id not in MODEL_ALIASES.values()]
    for hf_id in others:
        print(f"{'':<{width}}  {hf_id}")
    return 0


def _list_gpus(args: argparse.Namespace) -> int:
    from llmscale.planner.gpus import GPU_CATALOG
    from llmscale.planner.render import render_gpus

    if args.json:
        rows = [
            {
                "name": spec.name,
                "memory_gib": round(spec.memory_gib, 2),
                "hbm_bandwidth_tb_per_second": spec.hbm_bandwidth_bytes_per_second / 1e12,
                "price_per_hour_usd": spec.price_per_hour_usd,
                "gfd_product": spec.gfd_product,
            }
            for spec in GPU_CATALOG.values()
        ]
        print(json.dumps({"gpus": rows}, indent=2))
    else:
        sys.stdout.write(render_gpus(list(GPU_CATALOG.values())))
    return 0

"""`llmscale emulate`: a vLLM-compatible server driven by the replica performance model."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "Run a vLLM-compatible emulator (OpenAI API, /metrics) driven by the replica performance model"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("emulate", help=HELP, description=HELP)
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8000; 0 picks a free one)")
    p.add_argument("--model", default=None, help="model to emulate (Hugging Face id or catalog name)")
    p.add_argument("--served-model-name", nargs="+", default=None, help="name(s) clients use in `model`")
    p.add_argument("--gpu", default=None, help="GPU catalog name, e.g. H100-80GB, A100-80GB, L4")
    p.add_argument("--tensor-parallel-size", type=int, default=None, help="GPUs per replica")
    p.add_argument("--max-model-len", type=int, default=None, help="context length (prompt + output tokens)")
    p.add_argument("--max-num-seqs", type=int, default=None, help="batch slots (vLLM's default 256)")
    p.add_argument(
        "--metrics-names",
        default=None,
        help="current (vLLM v1 names, default) or legacy (older names: gpu_cache_usage_perc, ...)",
    )
    p.add_argument(
        "--pod-env",
        action="store_true",
        help="configure from the local pod runner's LLMSCALE_* environment (vllm command line, node labels)",
    )
    p.add_argument(
        "--speedup", type=float, default=None, help="model time runs X times faster than wall time"
    )
    p.add_argument(
        "--drain-timeout", type=float, default=30.0, help="seconds to finish in-flight requests on SIGTERM"
    )
    p.add_argument("--json", action="store_true", help="print the resolved configuration as JSON and exit")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace) -> Any:
    import dataclasses
    import os

    from llmscale_tools.emulator.config import DEFAULT_GPU, DEFAULT_MODEL, DEFAULT_PORT, EmulatorConfig
    from llmscale_tools.emulator.podenv import config_from_pod_env

    if args.pod_env:
        base = config_from_pod_env(os.environ, speedup=args.speedup)
    else:
        base = EmulatorConfig(model=DEFAULT_MODEL, gpu=DEFAULT_GPU, port=DEFAULT_PORT)
    overrides: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "model": args.model,
        "served_model_names": tuple(args.served_model_name) if args.served_model_name else None,
        "gpu": args.gpu,
        "tensor_parallel_size": args.tensor_parallel_size,
        "max_model_len": args.max_model_len,
        "max_num_seqs": args.max_num_seqs,
        "metrics_names": args.metrics_names,
        "speedup": args.speedup,
        "drain_timeout_seconds": args.drain_timeout,
    }
    # explicit flags win over the pod environment
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def run(args: argparse.Namespace) -> int:
    import asyncio
    import dataclasses
    import json

    from llmscale_tools.emulator.app import model_engine, serve_until_signal

    config = _config(args)
    spec = model_engine(config)  # unknown model/GPU: one line and exit 2, before binding
    if args.json:
        resolved = dataclasses.asdict(config)
        resolved.update(max_model_len=spec.max_model_len, kv_cache_tokens=spec.kv_cache_tokens)
        print(json.dumps(resolved, indent=2))
        return 0
    return asyncio.run(serve_until_signal(config, lambda _config: spec))

"""`llmscale demo`: the whole loop on the local cluster, live (see docs/demo.md)."""

from __future__ import annotations

import argparse
from typing import Any

STRATEGIES = ("Auto", "Warm", "Autoscaled", "ScaleToZero")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the operator, gateway and emulated vLLM pods locally and replay a trace through them",
        description=(
            "Bring up (or reuse) the local control plane and Prometheus, start the operator and the "
            "gateway, apply an emulated LLMDeployment, replay a bursty trace slice through the "
            "gateway with a live view, then print a summary, write a plot and shut down."
        ),
    )
    p.add_argument(
        "--trace", default=None, metavar="FILE", help="trace file (default: the shared Azure code trace)"
    )
    p.add_argument(
        "--speedup", type=float, default=4.0, metavar="X", help="time compression of the trace (4)"
    )
    p.add_argument("--duration", type=float, default=240.0, metavar="SECONDS", help="replay length (240)")
    p.add_argument(
        "--strategy", default="ScaleToZero", metavar="S", help=f"one of {', '.join(STRATEGIES)} (ScaleToZero)"
    )
    p.add_argument(
        "--plot", default="demo.png", metavar="FILE.png", help="where to write the plot (demo.png)"
    )
    p.add_argument(
        "--engine",
        default="emulator",
        metavar="E",
        help="emulator (default, fast) or vllm: real CPU vLLM serving a tiny model in every pod "
        "(needs `make vllm`; at most 2 replicas, prompts capped to its 1024-token context)",
    )
    p.add_argument("--keep-cluster", action="store_true", help="leave a cluster the demo started running")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (live view on stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llmscale_tools.demo.session import DemoOptions, run_demo

    return run_demo(DemoOptions.from_args(args))

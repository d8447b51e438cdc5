"""`llmscale simulate`: replay a trace through every scaling policy and compare them."""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING, Any

from llmscale.api import defaults
from llmscale.errors import UserInputError

if TYPE_CHECKING:
    from llmscale.sim.results import PolicyResult

DEFAULT_MODEL = defaults.SIMULATE_MODEL
DEFAULT_GPU = defaults.SIMULATE_GPU


def _positive(flag: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag}: value {text!r} is not a number") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{flag}: value {text!r} is invalid; expected a number > 0")
        return value

    return parse


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="replay a request trace through the scaling policies (SLO attainment vs GPU-hours)",
        description="Replay a trace (generic CSV timestamp,input_tokens,output_tokens; Azure CSV; Mooncake "
        "JSONL; ServeGen rate curves) through a modelled vLLM fleet under each scaling policy.",
    )
    p.add_argument("--trace", required=True, help="trace file or ServeGen directory")
    p.add_argument(
        "--rate-scale", type=_positive("--rate-scale"), default=1.0, help="multiply the request rate"
    )
    p.add_argument(
        "--policy",
        default="all",
        help="llmscale, hpa, keda, kpa, warm, oracle, hpa-tuned, keda-tuned, kpa-tuned, or all (default)",
    )
    p.add_argument(
        "--deployment",
        default=None,
        metavar="FILE.yaml",
        help="an LLMDeployment manifest: llmscale is simulated exactly as the operator runs it, the fleet"
        " follows its model, GPU, SLO and maxReplicas (the flags below override single fields)",
    )
    p.add_argument(
        "--slo-ttft-p95",
        type=_positive("--slo-ttft-p95"),
        default=None,
        help=f"TTFT target, seconds (default: the deployment's, {defaults.SLO_TTFT_P95})",
    )
    p.add_argument("--slo-itl-p95", type=_positive("--slo-itl-p95"), default=None, help="ITL target, seconds")
    p.add_argument("--gpu", default=None, help=f"GPU catalog name (default {DEFAULT_GPU})")
    p.add_argument("--model", default=None, help=f"model name or config.json (default {DEFAULT_MODEL})")
    p.add_argument(
        "--gpus", type=int, default=None, help="GPUs per replica (tensor parallel); default: planner"
    )
    p.add_argument(
        "--cold-start", type=_positive("--cold-start"), default=None, help="seconds; default from size"
    )
    p.add_argument("--start", type=float, default=0.0, help="skip the first SECONDS (clock restarts there)")
    p.add_argument("--duration", type=_positive("--duration"), default=None, help="only the first SECONDS")
    p.add_argument(
        "--max-replicas",
        type=int,
        default=None,
        help=f"upper bound for every policy (default: the manifest's, else {defaults.SIMULATE_MAX_REPLICAS})",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (ServeGen sampling, cold-start jitter)")
    p.add_argument(
        "--plot", default=None, metavar="FILE.png", help="write load/replicas and SLO-vs-cost plots"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _policies(selection: str) -> list[str]:
    from llmscale.sim.policies import POLICY_NAMES

    names = [name.strip().lower() for name in selection.split(",") if name.strip()]
    if names == ["all"]:
        return list(POLICY_NAMES)
    for name in names:
        if name not in POLICY_NAMES:
            raise UserInputError(f"--policy: value {name!r} is not a known policy; expected all or one of "
                                 f"{', '.join(POLICY_NAMES)}")  # fmt: skip
    if not names:
        raise UserInputError("--policy: value '' is empty; expected all or a policy name")
    return names


def run(args: argparse.Namespace) -> int:
    import sys

    from llmscale.sim.deployment import scored_itl_seconds, simulated_deployment
    from llmscale.sim.fleet import FleetConfig
    from llmscale.sim.policies import PolicyUnavailableError, get_policy
    from llmscale.sim.runner import run_policy
    from llmscale.sim.traces import read_trace

    names = _policies(args.policy)
    if args.max_replicas is not None and args.max_replicas < 1:
        raise UserInputError(f"--max-replicas: value {args.max_replicas} is invalid; expected >= 1")
    if args.gpus is not None and args.gpus < 1:
        raise UserInputError(f"--gpus: value {args.gpus} is invalid; expected >= 1")
    resource, model = simulated_deployment(
        args.deployment,
        model=args.model,
        gpu=args.gpu,
        gpus=args.gpus,
        max_replicas=args.max_replicas,
        slo_ttft_p95_seconds=args.slo_ttft_p95,
        slo_itl_p95_seconds=args.slo_itl_p95,
    )
    slo = resource.spec.scaling.slo
    if args.plot:
        from llmscale.sim.plot import check_writable

        check_writable(args.plot)  # before the run, not after it
    trace = read_trace(
        args.trace,
        rate_scale=args.rate_scale,
        duration_seconds=args.duration,
        seed=args.seed,
        start_seconds=args.start,
    )
    config = FleetConfig(
        model=model,
        slo_ttft_p95_seconds=slo.ttft_p95_seconds,
        slo_itl_p95_seconds=scored_itl_seconds(resource),
        slo_objective=slo.objective,
        cold_start_seconds=args.cold_start,
        max_replicas=resource.spec.scaling.max_replicas,
        seed=args.seed,
    )
    results: list[PolicyResult] = []
    skipped: list[str] = []
    for name in names:
        try:
            # llmscale runs the policy the operator would build for this deployment.
            results.append(
                run_policy(
                    name, trace, config, llmscale_factory=lambda: get_policy("llmscale", deployment=resource)
                )
            )
        except PolicyUnavailableError as exc:
            if len(names) == 1:
                raise
            skipped.append(name)
            print(f"llmscale simulate: skipping {name}: {exc}", file=sys.stderr)
    if args.plot:
        from llmscale.sim.plot import write_plot

        write_plot(args.plot, trace, results, slo.ttft_p95_seconds)
    if args.json:
        document = {
            "trace": str(args.trace),
            "rate_scale": args.rate_scale,
            "requests": len(trace),
            "duration_seconds": round(trace.duration_seconds, 3),
            "model": model.model_name,
            "gpu": model.gpu_name,
            "gpus_per_replica": model.gpus,
            "cold_start_seconds": round(config.effective_cold_start_seconds, 1),
            "slo_ttft_p95_seconds": slo.ttft_p95_seconds,
            "policies": [result.to_json_dict() for result in results],
            "skipped": skipped,
        }
        print(json.dumps(document, indent=2))
        return 0
    print(
        f"trace {args.trace}: {len(trace)} requests over {trace.duration_seconds / 60:.1f} min "
        f"(rate x{args.rate_scale:g}); {model.model_name} on {model.gpus}x {model.gpu_name}, "
        f"cold start {config.effective_cold_start_seconds:.0f} s, SLO TTFT <= {slo.ttft_p95_seconds:g} s"
    )
    header = f"{'policy':<11} {'SLO attain':>10} {'TTFT p95 s':>10} {'GPU-hours':>10} {'cold starts':>11} "
    header += f"{'scale events':>12} {'failed':>7}"
    print(header)
    for result in results:
        ttft = "-" if result.ttft_p95_s is None else f"{result.ttft_p95_s:.3f}"
        print(
            f"{result.name:<11} {result.slo_attainment * 100:>9.2f}% {ttft:>10} {result.gpu_hours:>10.3f} "
            f"{result.cold_starts:>11} {result.scale_events:>12} {result.failed_requests:>7}"
        )
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0

"""`llmscale bench`: TTFT, inter-token and end-to-end latency of an OpenAI-compatible endpoint."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "Measure TTFT/ITL/e2e percentiles, throughput and goodput under concurrency or Poisson load"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("bench", help=HELP, description=HELP)
    p.add_argument("--url", required=True, help="server base URL (or its /v1/completions URL)")
    p.add_argument("--model", default=None, help="model name to request (default: the first of /v1/models)")
    p.add_argument(
        "--api", choices=("completions", "chat"), default=None, help="endpoint (default completions)"
    )
    p.add_argument("--concurrency", default=None, help="closed-loop levels, e.g. 1,4,16 (default 1,4,16)")
    p.add_argument("--rate", default=None, help="open-loop Poisson request rates per second, e.g. 2,5,10")
    p.add_argument(
        "--requests", type=int, default=None, help="requests per level (default: 5 x concurrency, >= 20)"
    )
    p.add_argument("--duration", type=float, default=None, help="seconds per level (stop sending after)")
    p.add_argument("--input-tokens", type=int, default=200, help="prompt tokens per request (default 200)")
    p.add_argument("--output-tokens", type=int, default=180, help="output tokens per request (default 180)")
    p.add_argument("--trace", default=None, help="take (input, output) lengths in order from this trace file")
    p.add_argument("--slo-ttft", default=None, help="TTFT p95 target: seconds or a duration (default 2s)")
    p.add_argument("--slo-itl", default=None, help="ITL p95 target: seconds or a duration (default 100ms)")
    p.add_argument(
        "--timeout", type=float, default=300.0, help="per-request timeout in seconds (default 300)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the Poisson arrivals (default 0)")
    p.add_argument(
        "--stagger",
        default=None,
        help="closed loop: spread the clients' first requests over this window, seconds or a "
        "duration (default 100ms, as guidellm and inference-perf ramp; 0 starts all at once)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress output on stderr")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def _numbers(flag: str, text: str, kind: type) -> list[Any]:
    from llmscale.errors import UserInputError

    values: list[Any] = []
    for item in text.split(","):
        try:
            value = kind(item.strip())
        except ValueError:
            raise UserInputError(
                f"{flag}: value {item.strip()!r} is not a number; expected e.g. 1,4,16"
            ) from None
        if not value > 0:
            raise UserInputError(f"{flag}: value {item.strip()!r} must be > 0")
        values.append(value)
    return values


def _seconds(flag: str, text: str | None, default: str, *, zero_ok: bool = False) -> float:
    from llmscale.api.duration import parse_duration_seconds
    from llmscale.errors import UserInputError

    raw = default if text is None else text.strip()
    try:
        value = float(raw)
    except ValueError:
        try:
            value = parse_duration_seconds(raw)
        except ValueError:
            raise UserInputError(
                f"{flag}: value {raw!r} is not seconds or a duration like 500ms, 2s"
            ) from None
    if value == 0 and zero_ok:
        return 0.0
    if not value > 0:
        raise UserInputError(f"{flag}: value {raw!r} must be > 0")
    return value


def settings_from_args(args: argparse.Namespace) -> Any:
    from llmscale.api import defaults
    from llmscale.bench.load import Level
    from llmscale.bench.run import BenchSettings, split_url
    from llmscale.bench.stats import Slo
    from llmscale.errors import UserInputError

    split_url(args.url)  # validates the URL before anything runs
    levels: list[Level] = []
    if args.concurrency is not None:
        levels += [Level("concurrency", c) for c in _numbers("--concurrency", args.concurrency, int)]
    if args.rate is not None:
        levels += [Level("rate", r) for r in _numbers("--rate", args.rate, float)]
    if not levels:
        levels = [Level("concurrency", c) for c in (1, 4, 16)]
    if args.requests is not None and args.requests < 1:
        raise UserInputError(f"--requests: value {args.requests} must be >= 1")
    if args.duration is not None and not args.duration > 0:
        raise UserInputError(f"--duration: value {args.duration} must be > 0")
    if not args.timeout > 0:
        raise UserInputError(f"--timeout: value {args.timeout} must be > 0")
    stagger = 0.1 if args.stagger is None else _seconds("--stagger", args.stagger, "100ms", zero_ok=True)
    slo = Slo(
        ttft_p95_seconds=_seconds("--slo-ttft", args.slo_ttft, str(defaults.SLO_TTFT_P95)),
        itl_p95_seconds=_seconds("--slo-itl", args.slo_itl, str(defaults.SLO_ITL_P95)),
    )
    return BenchSettings(
        url=args.url,
        model=args.model,
        api=args.api,
        levels=tuple(levels),
        requests=args.requests,
        duration_seconds=args.duration,
        timeout_seconds=args.timeout,
        slo=slo,
        seed=args.seed,
        stagger_seconds=stagger,
    )


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from llmscale.bench.report import Progress, print_report
    from llmscale.bench.run import all_failed, run_sync
    from llmscale.bench.workload import fixed_workload, trace_workload

    settings = settings_from_args(args)
    if args.trace is not None:
        workload, info = trace_workload(args.trace)
    else:
        workload, info = fixed_workload(args.input_tokens, args.output_tokens)
    report = run_sync(settings, workload, info, Progress(sys.stderr, enabled=not args.no_progress))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"bench: {report['model']} at {report['url']} ({report['api']}), workload {info}")
        print_report(report, sys.stdout)
    if all_failed(report["levels"]):
        print("llmscale bench: error: every request failed (see the errors above)", file=sys.stderr)
        return 1
    return 0

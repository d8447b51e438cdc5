"""`llmscale backtest`: the suite (and any trace given) through every policy; one table."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from llmscale.errors import UserInputError

DEFAULT_SUITE = "suites/default.yaml"


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "backtest",
        help="score every policy on a suite of traffic scenarios (attainment, GPU-hours, targets)",
        description="Replay each scenario of a suite (and any --trace) through llmscale (built from the "
        "scenario's LLMDeployment manifest), hpa, keda, kpa, their hindsight-tuned variants, warm and the "
        "oracle, from the same starting fleet, and score llmscale against the targets.",
    )
    p.add_argument("--suite", default=DEFAULT_SUITE, help=f"suite YAML (default {DEFAULT_SUITE})")
    p.add_argument("--scenario", action="append", default=[], metavar="NAME", help="run only these scenarios")
    p.add_argument("--trace", action="append", default=[], metavar="FILE", help="also run this trace")
    p.add_argument("--rate-scale", type=float, default=1.0, help="rate scale of the --trace scenarios")
    p.add_argument("--policy", default="all", help="comma-separated policies (default all)")
    p.add_argument("--plot-dir", default=None, metavar="DIR", help="write one plot per scenario here")
    p.add_argument("--jobs", type=int, default=1, help="simulations run in this many processes (default 1)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _check_plot_dir(path: str) -> Path:
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".llmscale-write-check-"):
            pass
    except OSError as exc:
        raise UserInputError(
            f"--plot-dir: directory {path!r} is not writable ({exc.strerror or exc})"
        ) from None
    return directory


def _policies(selection: str) -> tuple[str, ...]:
    from llmscale.sim.backtest.run import POLICIES

    if selection.strip().lower() == "all":
        return POLICIES
    names = tuple(name.strip().lower() for name in selection.split(",") if name.strip())
    for name in names:
        if name not in POLICIES:
            raise UserInputError(
                f"--policy: value {name!r} is not a known policy; expected all or {', '.join(POLICIES)}"
            )
    if not names:
        raise UserInputError("--policy: value '' is empty; expected all or a policy name")
    return names


def run(args: argparse.Namespace) -> int:
    from llmscale.sim.backtest.report import render_table
    from llmscale.sim.backtest.run import prepare, run_all
    from llmscale.sim.backtest.suite import load_suite, trace_scenario

    if args.jobs < 1:
        raise UserInputError(f"--jobs: value {args.jobs} is invalid; expected >= 1")
    if not (args.rate_scale > 0):
        raise UserInputError(f"--rate-scale: value {args.rate_scale!r} is invalid; expected a number > 0")
    policies = _policies(args.policy)
    plot_dir = _check_plot_dir(args.plot_dir) if args.plot_dir else None
    suite = load_suite(Path(args.suite))
    known = {scenario.name: scenario for scenario in suite.scenarios}
    for name in args.scenario:
        if name not in known:
            raise UserInputError(
                f"--scenario: value {name!r} is not in {args.suite}; expected one of {', '.join(known)}"
            )
    chosen = [known[name] for name in args.scenario]
    if not args.scenario and not args.trace:
        chosen = list(suite.scenarios)
    chosen += [trace_scenario(trace, suite, args.rate_scale) for trace in args.trace]
    prepared = [prepare(scenario) for scenario in chosen]  # every input checked before any run

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=err, disable=os.environ.get("LLMSCALE_NO_PROGRESS") == "1",
    ) as progress:  # fmt: skip
        task = progress.add_task("backtest", total=len(prepared) * len(policies))

        def done(scenario: str, policy: str) -> None:
            progress.update(task, advance=1, description=f"{scenario}: {policy} done")

        outcomes = run_all(prepared, policies, jobs=args.jobs, on_done=done)
    if plot_dir is not None:
        from llmscale.sim.plot import write_plot

        for outcome in outcomes:
            write_plot(
                str(plot_dir / f"{outcome.scenario.name}.png"), outcome.trace, outcome.results,
                outcome.config.slo_ttft_p95_seconds, title=outcome.scenario.name,
            )  # fmt: skip
    if args.json:
        print(json.dumps({"scenarios": [outcome.to_json_dict() for outcome in outcomes]}, indent=2))
        return 0
    Console(file=sys.stdout, width=max(190, Console().width)).print(render_table(outcomes))
    if plot_dir is not None:
        print(f"plots written to {plot_dir}/")
    return 0

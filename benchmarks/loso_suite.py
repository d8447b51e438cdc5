"""Leave-one-scenario-out (LOSO) for the decision core's tunables, over the backtest suite.

For each value set in the grid of `TUNABLES` (module constants of `llmscale.scaling`) and
`POLICY_TUNABLES` (tunable `ScalingPolicy` fields, passed as the operator's
`--scaling-overrides` would pass them), llmscale
is replayed on every scenario of the suite (`llmscale.sim.backtest`: the same manifests,
traces and fleet as `llmscale backtest`); the other policies' figures come from one prior
`llmscale backtest --json` run (they do not depend on llmscale's constants). Each run scores
targets met (attainment >= best of hpa/keda/kpa and their tuned variants - 0.005; GPU-hours
<= 0.8 x each of those that reaches llmscale's attainment; <= 1.25 x the oracle; no failed
request) - 0.01 x GPU-hours / oracle GPU-hours. For each scenario, the value set that scores best
on all *other* scenarios is scored on the left-out one, beside the in-sample best (best on all).

Usage: .venv/bin/llmscale backtest --json > bt.json
       .venv/bin/python benchmarks/loso_suite.py bt.json [--suite suites/default.yaml] [--jobs 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from llmscale.scaling import PolicySettings, forecast, keepalive
from llmscale.scaling.types import ScalingPolicy
from llmscale.sim.backtest.deployment import llmscale_policy_for
from llmscale.sim.backtest.run import (
    ATTAINMENT_SLACK,
    BASELINES,
    COST_VS_BASELINE,
    COST_VS_ORACLE,
    prepare,
)
from llmscale.sim.backtest.suite import load_suite
from llmscale.sim.runner import simulate

TUNABLES: dict[str, tuple[Any, str, tuple[float, ...]]] = {
    "keep_alive_fallback_s": (keepalive, "FALLBACK_KEEP_ALIVE_SECONDS", (300.0, 600.0, 1200.0)),
    "forecast_select_margin": (forecast, "SELECT_MARGIN", (0.0, 0.05, 0.15)),
}
# ScalingPolicy field -> grid (the first value of each is not special; defaults are reported).
POLICY_TUNABLES: dict[str, tuple[float, ...]] = {
    "slo_headroom_rise_seconds": (20.0, 50.0, 100.0),
    "slo_headroom_max": (1.0, 2.0),
    "slo_headroom_decay_seconds": (900.0, 1800.0),
    # one-sided standard normal quantiles: 50, 75, 84, 90, 95 %
    "forecast_uncertainty_z": (0.0, 0.67, 1.0, 1.28, 1.64),
}


def score(ours: dict[str, float], others: dict[str, dict[str, float]]) -> float:
    baselines = [others[name] for name in BASELINES if name in others]
    best = max(b["slo_attainment"] for b in baselines)
    as_good = [b for b in baselines if b["slo_attainment"] >= ours["slo_attainment"]]
    oracle = others["oracle"]["gpu_hours"]
    met = [
        ours["slo_attainment"] >= best - ATTAINMENT_SLACK,
        all(ours["gpu_hours"] <= COST_VS_BASELINE * b["gpu_hours"] for b in as_good),
        ours["gpu_hours"] <= COST_VS_ORACLE * oracle,
        ours["failed_requests"] == 0,
    ]
    return sum(met) - 0.01 * ours["gpu_hours"] / oracle


def llmscale_run(args: tuple[Path, str, tuple[float, ...]]) -> dict[str, float]:
    suite_path, name, values = args
    module_values, policy_values = values[: len(TUNABLES)], values[len(TUNABLES) :]
    for (module, attribute, _), value in zip(TUNABLES.values(), module_values, strict=True):
        setattr(module, attribute, value)
    overrides = dict(zip(POLICY_TUNABLES, policy_values, strict=True))
    scenario = next(s for s in load_suite(suite_path).scenarios if s.name == name)
    prepared = prepare(scenario)
    policy = llmscale_policy_for(prepared.setup.resource, PolicySettings(overrides=overrides))
    result = simulate(prepared.trace, policy, prepared.config)
    return {"slo_attainment": result.slo_attainment, "gpu_hours": result.gpu_hours,
            "failed_requests": result.failed_requests}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backtest_json")
    parser.add_argument("--suite", default="suites/default.yaml")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--policy-fields-only",
        action="store_true",
        help="hold the module constants at their current values; search the ScalingPolicy fields",
    )
    parser.add_argument(
        "--fields",
        nargs="+",
        choices=sorted(POLICY_TUNABLES),
        help="search only these ScalingPolicy fields (the others keep their defaults)",
    )
    args = parser.parse_args()
    if args.fields:
        for field in list(POLICY_TUNABLES):
            if field not in args.fields:
                del POLICY_TUNABLES[field]
    if args.policy_fields_only:
        for key, (module, attribute, _) in list(TUNABLES.items()):
            TUNABLES[key] = (module, attribute, (getattr(module, attribute),))
    document = json.loads(Path(args.backtest_json).read_text())
    others = {
        entry["name"]: {p["name"]: p for p in entry["policies"] if p["name"] != "llmscale"}
        for entry in document["scenarios"]
    }
    names = list(others)
    axes = [values for _, _, values in TUNABLES.values()] + list(POLICY_TUNABLES.values())
    grid = list(itertools.product(*axes))
    work = [(Path(args.suite), name, values) for values in grid for name in names]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = list(pool.map(llmscale_run, work))
    table: dict[tuple[float, ...], dict[str, float]] = {values: {} for values in grid}
    for (_, name, values), ours in zip(work, runs, strict=True):
        table[values][name] = score(ours, others[name])
    in_sample = max(grid, key=lambda v: sum(table[v].values()))
    defaults = tuple(getattr(module, attribute) for module, attribute, _ in TUNABLES.values()) + tuple(
        getattr(ScalingPolicy(), field) for field in POLICY_TUNABLES
    )
    print(
        f"LOSO over {', '.join([*TUNABLES, *POLICY_TUNABLES])}: "
        f"{len(grid)} value sets x {len(names)} scenarios"
    )
    default_total = f"{sum(table[defaults].values()):.3f}" if defaults in table else "not in the grid"
    print(f"in-sample best {in_sample} total {sum(table[in_sample].values()):.3f}; "
          f"defaults {defaults} total {default_total}")  # fmt: skip
    for values in grid:
        print(f"  value set {values!s:>30s}: total {sum(table[values].values()):.3f}")
    print(f"{'left out':24s} {'chosen on the others':>22s} {'left-out':>9s} {'in-sample':>10s}")
    left_out_total = 0.0
    for name in names:
        rest = [n for n in names if n != name]
        best = max(grid, key=lambda v: sum(table[v][n] for n in rest))
        left_out_total += table[best][name]
        print(f"{name:24s} {best!s:>22s} {table[best][name]:9.3f} {table[in_sample][name]:10.3f}")
    in_total = sum(table[in_sample].values())
    print(
        f"total left-out {left_out_total:.3f} vs in-sample {in_total:.3f} "
        f"(gap {in_total - left_out_total:.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

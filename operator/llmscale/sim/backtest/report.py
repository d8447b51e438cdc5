"""The backtest table: one row per scenario and policy, ratios, llmscale's targets."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from llmscale.sim.backtest.run import ScenarioResult

# column header -> target key (see llmscale.sim.backtest.run)
TARGET_COLUMNS = {
    "att>=best-.005": "attainment",
    "GPU-h<=.8xbase": "cost_vs_baselines",
    "GPU-h<=1.25xO": "cost_vs_oracle",
    "0 failed": "no_failed",
}


def _ratio(value: float, base: float | None) -> str:
    return "-" if base is None or base <= 0 else f"{value / base:.2f}"


def target_marks(outcome: ScenarioResult) -> list[str]:
    targets = outcome.targets()
    marks = []
    for key in TARGET_COLUMNS.values():
        passed = targets.get(key)
        marks.append("-" if passed is None else ("pass" if passed else "FAIL"))
    return marks


def render_table(outcomes: Sequence[ScenarioResult]) -> Table:
    table = Table(title="llmscale backtest (GPU-hour ratios: to the best baseline, to the oracle)")
    for column, justify in (
        ("scenario", "left"), ("policy", "left"), ("attain", "right"), ("TTFT p95 s", "right"),
        ("GPU-h", "right"), ("cold", "right"), ("failed", "right"), ("rejected", "right"),
        ("x best", "right"),
        ("x oracle", "right"),
    ):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for column in TARGET_COLUMNS:
        table.add_column(column, justify="center")
    for outcome in outcomes:
        best, oracle = outcome.best_baseline(), outcome.by_name("oracle")
        for index, result in enumerate(outcome.results):
            ttft = "-" if result.ttft_p95_s is None else f"{result.ttft_p95_s:.2f}"
            name = result.name + (" *" if best is not None and result.name == best.name else "")
            table.add_row(
                outcome.scenario.name if index == 0 else "",
                name,
                f"{result.slo_attainment:.4f}",
                ttft,
                f"{result.gpu_hours:.2f}",
                str(result.cold_starts),
                str(result.failed_requests),
                str(result.rejected_requests),
                _ratio(result.gpu_hours, None if best is None else best.gpu_hours),
                _ratio(result.gpu_hours, None if oracle is None else oracle.gpu_hours),
                *(target_marks(outcome) if result.name == "llmscale" else [""] * len(TARGET_COLUMNS)),
                end_section=index == len(outcome.results) - 1,
            )
    caption = (
        "* = best baseline (highest attainment among hpa/keda/kpa and tuned, then cheapest); "
        "target columns: llmscale's row (issue 12 targets)"
    )
    for outcome in outcomes:
        beaten = outcome.oracle_beaten_by()
        if beaten:
            caption += (
                f"\n{outcome.scenario.name}: the oracle is not a bound here ({', '.join(beaten)} cheaper)"
            )
    table.caption = caption
    return table

"""The backtest suite file: scenarios = a trace (or a generator), its slice, load levels, SLO and
the LLMDeployment manifest that defines the fleet and the llmscale policy.

    traces_dir: ../../shared/traces        # relative to this file; $LLMSCALE_TRACE_DIR wins
    defaults:                              # any scenario key, applied where a scenario omits it
      deployment: deployments/llama-8b-h100.yaml
    scenarios:
      - name: azure-code                   # one scenario per load level: azure-code-x1, -x3
        trace: AzureLLMInferenceTrace_code.csv
        rate_scales: [1, 3]
        start: 0                           # seconds (or 36h, 90m ...) skipped, clock restarted
        duration: 1h                       # kept after the start
        slo_ttft_p95: 1s                   # override the manifest's spec.scaling.slo.ttftP95
        slo_objective: 0.99                # override spec.scaling.slo.objective
        step_seconds: 1                    # simulator step (long runs may take a coarser one)

Every problem is one UserInputError line naming the file, the scenario, the key and the value.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmscale.api.duration import parse_duration_seconds
from llmscale.errors import UserInputError
from llmscale.sim.generators import GENERATORS

SCENARIO_KEYS: tuple[str, ...] = (
    "name", "description", "trace", "generator", "rate_scale", "rate_scales", "start", "duration",
    "slo_ttft_p95", "slo_objective", "deployment", "step_seconds", "seed",
)  # fmt: skip
TOP_KEYS: tuple[str, ...] = ("traces_dir", "defaults", "scenarios")
TRACE_DIR_ENV = "LLMSCALE_TRACE_DIR"


@dataclass(frozen=True)
class Scenario:
    name: str
    deployment: Path
    trace: Path | None = None
    generator: str | None = None
    rate_scale: float = 1.0
    start_seconds: float = 0.0
    duration_seconds: float | None = None
    slo_ttft_p95_seconds: float | None = None
    slo_objective: float | None = None
    step_seconds: float = 1.0
    seed: int = 0
    description: str = ""

    @property
    def source(self) -> str:
        return str(self.trace) if self.trace is not None else f"generator {self.generator}"


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise UserInputError(f"{where}: value {value!r} is invalid; expected seconds or a duration like 36h")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        try:
            seconds = parse_duration_seconds(value.strip())
        except (ValueError, UserInputError):
            raise UserInputError(
                f"{where}: value {value!r} is invalid; expected seconds or a duration like 36h"
            ) from None
    else:
        raise UserInputError(f"{where}: value {value!r} is invalid; expected seconds or a duration like 36h")
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UserInputError(f"{where}: value {value!r} is invalid; expected seconds >= 0")
    return seconds


def _positive(value: Any, where: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value > 0)
    ):
        raise UserInputError(f"{where}: value {value!r} is invalid; expected a number > 0")
    return float(value)


def build_scenarios(entry: dict[str, Any], where: str, base: Path, trace_dir: Path) -> list[Scenario]:
    """The scenarios of one suite entry (one per load level); checks every key and file."""
    unknown = sorted(set(entry) - set(SCENARIO_KEYS))
    if unknown:
        raise UserInputError(
            f"{where}: key {unknown[0]!r} is unknown; expected one of {', '.join(SCENARIO_KEYS)}"
        )
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise UserInputError(f"{where}.name: value {name!r} is invalid; expected a non-empty name")
    where = f"{where} ({name})"
    trace, generator = entry.get("trace"), entry.get("generator")
    if (trace is None) == (generator is None):
        raise UserInputError(
            f"{where}: keys trace and generator: give exactly one "
            f"(got trace={trace!r}, generator={generator!r})"
        )
    trace_path = None
    if trace is not None:
        trace_path = Path(os.path.expanduser(str(trace)))
        if not trace_path.is_absolute():
            trace_path = trace_dir / trace_path
        if not trace_path.exists():
            raise UserInputError(f"{where}.trace: file {str(trace_path)!r} does not exist")
    elif generator not in GENERATORS:
        raise UserInputError(
            f"{where}.generator: value {generator!r} is unknown; expected one of {', '.join(GENERATORS)}"
        )
    deployment = entry.get("deployment")
    if not isinstance(deployment, str):
        raise UserInputError(
            f"{where}.deployment: value {deployment!r} is invalid; expected an LLMDeployment manifest path"
        )
    deployment_path = Path(deployment) if Path(deployment).is_absolute() else base / deployment
    if not deployment_path.is_file():
        raise UserInputError(f"{where}.deployment: file {str(deployment_path)!r} does not exist")
    scales_value = entry.get("rate_scales", [entry.get("rate_scale", 1.0)])
    if not isinstance(scales_value, list) or not scales_value:
        raise UserInputError(
            f"{where}.rate_scales: value {scales_value!r} is invalid; expected a list of numbers > 0"
        )
    scales = [_positive(value, f"{where}.rate_scales") for value in scales_value]
    start = _seconds(entry.get("start", 0), f"{where}.start")
    duration = entry.get("duration")
    duration_seconds = None if duration is None else _seconds(duration, f"{where}.duration")
    if duration_seconds == 0:
        raise UserInputError(f"{where}.duration: value {duration!r} is invalid; expected seconds > 0")
    ttft = entry.get("slo_ttft_p95")
    ttft_seconds = None if ttft is None else _seconds(ttft, f"{where}.slo_ttft_p95")
    if ttft_seconds == 0:
        raise UserInputError(f"{where}.slo_ttft_p95: value {ttft!r} is invalid; expected seconds > 0")
    objective = entry.get("slo_objective")
    if objective is not None and (
        isinstance(objective, bool) or not isinstance(objective, int | float) or not 0 < objective <= 1
    ):
        raise UserInputError(
            f"{where}.slo_objective: value {objective!r} is invalid; expected a fraction in (0, 1]"
        )
    step = _positive(entry.get("step_seconds", 1.0), f"{where}.step_seconds")
    seed = entry.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserInputError(f"{where}.seed: value {seed!r} is invalid; expected an integer")
    many = len(scales) > 1 or "rate_scales" in entry
    return [
        Scenario(
            name=f"{name}-x{scale:g}" if many else name,
            deployment=deployment_path,
            trace=trace_path,
            generator=generator,
            rate_scale=scale,
            start_seconds=start,
            duration_seconds=duration_seconds,
            slo_ttft_p95_seconds=ttft_seconds,
            slo_objective=None if objective is None else float(objective),
            step_seconds=step,
            seed=seed,
            description=str(entry.get("description", "")),
        )
        for scale in scales
    ]


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserInputError(f"{where}: value {value!r} is invalid; expected a mapping")
    return value


@dataclass(frozen=True)
class Suite:
    path: Path
    scenarios: list[Scenario]
    defaults: dict[str, Any]
    trace_dir: Path


def load_suite(path: Path) -> Suite:
    if not path.is_file():
        raise UserInputError(f"--suite: file {str(path)!r} does not exist")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserInputError(f"--suite: file {str(path)!r} is not YAML ({type(exc).__name__})") from None
    document = _mapping(document, f"{path}")
    unknown = sorted(set(document) - set(TOP_KEYS))
    if unknown:
        raise UserInputError(f"{path}: key {unknown[0]!r} is unknown; expected one of {', '.join(TOP_KEYS)}")
    base = path.parent
    trace_dir = Path(os.environ.get(TRACE_DIR_ENV) or base / str(document.get("traces_dir", ".")))
    defaults = _mapping(document.get("defaults", {}), f"{path}: defaults")
    entries = document.get("scenarios")
    if not isinstance(entries, list) or not entries:
        raise UserInputError(f"{path}: scenarios: value {entries!r} is invalid; expected a list of scenarios")
    scenarios: list[Scenario] = []
    for index, entry in enumerate(entries):
        where = f"{path}: scenarios[{index}]"
        scenarios.extend(build_scenarios({**defaults, **_mapping(entry, where)}, where, base, trace_dir))
    names = [scenario.name for scenario in scenarios]
    for name in names:
        if names.count(name) > 1:
            raise UserInputError(f"{path}: scenario name {name!r} is used twice; expected unique names")
    return Suite(path, scenarios, defaults, trace_dir)


def trace_scenario(trace: str, suite: Suite, rate_scale: float) -> Scenario:
    """A scenario for a trace given on the command line, with the suite's defaults."""
    entry = {
        **suite.defaults,
        "name": Path(trace).stem,
        "trace": str(Path(trace).resolve()),
        "rate_scale": rate_scale,
    }
    entry.pop("rate_scales", None)
    if not Path(trace).exists():
        raise UserInputError(f"--trace: file {trace!r} does not exist")
    return build_scenarios(entry, f"--trace {trace}", suite.path.parent, suite.trace_dir)[0]

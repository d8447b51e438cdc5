"""`llmscale bench` side by side with guidellm and inference-perf (docs/bench.md).

    python benchmarks/bench_peers.py --url http://127.0.0.1:8000 --model NAME \
        --peers-venv /tmp/peers --tokenizer DIR [--emulator] [--levels 1,4,16] [--requests 40]

Runs each tool at each closed-loop concurrency with the same workload (200 prompt tokens,
180 output tokens, ignore_eos, streaming completions) and prints one markdown table of TTFT,
ITL, TPOT and e2e medians (ms) with each peer's ratio to llmscale bench on the figures it
defines the same way (guidellm's "ITL" is a per-request mean: TPOT). The peers live in their own
throwaway venv (`--peers-venv`; they are never project dependencies): guidellm 0.8.1 and
inference-perf 0.7.0 (which needs Python 3.12). They tokenise with `--tokenizer` (the tiny
model's directory from `make vllm`), so nothing is downloaded; the served model name must be that
directory when the tokenizer is looked up by model name (guidellm does).

A second table divides out the engine's own drift: before and after each tool's run the
script reads the server's latency histograms (`SERVER_FAMILIES`, sum and count) and reports each
tool's mean over the engine's mean for exactly those requests, and a peer's ratio over ours on
that basis. guidellm and inference-perf run `--peer-workers` processes (default: the cores this
script may run on), so on a small machine the load generators do not take the engine's CPU.
`--json FILE` keeps every repeat; `--tables-from FILE` prints the tables of such a file again.

`--emulator`: the emulator has no tokenizer and counts characters / 4, so guidellm gets the
exact prompt length through its request extras (`llmscale_prompt_tokens`, as llmscale bench
sends it) and inference-perf, which cannot add body fields, gets prompts of 1.28x the tokens:
its random prompts decode to about 1.28 tiny-tokenizer tokens per emulator token (characters
/ 4; measured on the emulator's vllm:prompt_tokens_total: 534 tokens asked, 417 counted), so
256 tokens make about 200 emulator tokens.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchkit import SMOKE

PROMPT_TOKENS = 200
OUTPUT_TOKENS = 180  # --output-tokens overrides (real CPU vLLM: fewer keeps a run in minutes)
EMULATOR_CHARS_RATIO = 1.28


Figures = dict[str, float | None]
KEYS = ("ttft", "itl", "tpot", "e2e")
SERVER_FAMILIES = {
    "ttft": "vllm:time_to_first_token_seconds",
    "itl": "vllm:inter_token_latency_seconds",
    "tpot": "vllm:request_time_per_output_token_seconds",
    "e2e": "vllm:e2e_request_latency_seconds",
}
"""The engine's own histograms of the four figures (vLLM's names; the emulator exports them too):
their sum and count before and after one tool's run give the engine's mean over exactly the
requests that tool sent."""
MATCHED = "llmscale bench, inference-perf's ramp"
"""A second run of ours at concurrency > 1 with the start ramp inference-perf took (it has no
setting for one): inference-perf's TTFT is compared with this row, its other figures too."""
MIN_ROUNDS = 6
"""Every stream runs at least this many requests, so the start ramp's requests (which meet
fewer streams) are a small share of a level's samples."""


def requests_at(args: argparse.Namespace, level: int) -> int:
    return max(int(args.requests), MIN_ROUNDS * level)


def run(argv: list[str], cwd: Path, env_extra: dict[str, str] | None = None) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1") | (env_extra or {})
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if done.returncode != 0:
        sys.exit(f"{argv[0]} failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}")
    return done.stdout


def ours(args: argparse.Namespace, level: int, work: Path, stagger: float | None = None) -> Figures:
    stagger = args.stagger if stagger is None else stagger
    out = run(
        [
            str(Path(sys.executable).parent / "llmscale"), "bench", "--url", args.url, "--model", args.model,
            "--concurrency", str(level), "--requests", str(requests_at(args, level)),
            "--input-tokens", str(PROMPT_TOKENS), "--output-tokens", str(OUTPUT_TOKENS),
            "--stagger", f"{stagger:.4f}", "--no-progress", "--json",
        ],
        work,
    )  # fmt: skip
    level_report = json.loads(out)["levels"][0]
    figures: Figures = {k: level_report[f"{k}_p50_s"] * 1000 for k in KEYS}
    return figures | {f"{k}_mean": level_report[f"{k}_mean_s"] * 1000 for k in KEYS}


def guidellm(args: argparse.Namespace, level: int, work: Path) -> Figures:
    backend: dict[str, Any] = {
        "kind": "openai_http", "target": args.url, "model": args.model, "request_format": "/v1/completions",
    }  # fmt: skip
    if args.emulator:
        backend["extras"] = {"body": {"llmscale_prompt_tokens": PROMPT_TOKENS}}
    scenario = {
        "spec": {
            "backend": backend,
            # the same start ramp as llmscale bench's --stagger (guidellm's default is none)
            "profile": {"kind": "concurrent", "streams": [level], "rampup_duration": args.stagger},
            "data": [
                {"kind": "synthetic_text", "prompt_tokens": PROMPT_TOKENS, "output_tokens": OUTPUT_TOKENS}
            ],
            "constraints": [{"kind": "max_requests", "count": requests_at(args, level)}],
            "outputs": [{"kind": "json", "path": str(work / f"guidellm-{level}.json")}],
        }
    }
    path = work / f"guidellm-{level}.scenario.json"
    path.write_text(json.dumps(scenario))
    run(
        [
            str(args.peers_venv / "bin" / "guidellm"), "run", "-c", str(path),
            "--output", f"kind=json,path={work / f'guidellm-{level}.json'}", "--disable-progress",
        ],
        work,
        # guidellm runs min(concurrency, 10) worker processes by default; on two cores they took
        # CPU from the engine under test (docs/bench.md), so one per core the script may use
        {"GUIDELLM__MAX_WORKER_PROCESSES": str(args.peer_workers)},
    )  # fmt: skip
    metrics = json.loads((work / f"guidellm-{level}.json").read_text())["benchmarks"][0]["metrics"]

    def stat(name: str, which: str, scale: float = 1.0) -> float:
        return float(metrics[name]["successful"][which]) * scale

    # guidellm's "inter_token_latency_ms" is per request, (last token - first token) /
    # (output tokens - 1): what vLLM and llmscale bench call TPOT; it keeps no per-gap figure
    return {
        "ttft": stat("time_to_first_token_ms", "median"),
        "itl": None,
        "tpot": stat("inter_token_latency_ms", "median"),
        "e2e": stat("request_latency", "median", 1000.0),
        "ttft_mean": stat("time_to_first_token_ms", "mean"),
        "itl_mean": None,
        "tpot_mean": stat("inter_token_latency_ms", "mean"),
        "e2e_mean": stat("request_latency", "mean", 1000.0),
    }


def inference_perf(args: argparse.Namespace, level: int, work: Path) -> Figures:
    prompt = round(PROMPT_TOKENS * EMULATOR_CHARS_RATIO) if args.emulator else PROMPT_TOKENS
    reports = Path(tempfile.mkdtemp(prefix=f"inference-perf-{level}-", dir=work))  # one per run
    config = {
        "api": {"type": "completion", "streaming": True},
        "data": {
            "type": "random",
            "input_distribution": {
                "min": prompt,
                "max": prompt,
                "mean": prompt,
                "std_dev": 0,
                "type": "fixed",
            },
            "output_distribution": {
                "min": OUTPUT_TOKENS,
                "max": OUTPUT_TOKENS,
                "mean": OUTPUT_TOKENS,
                "std_dev": 0,
                "type": "fixed",
            },
        },
        "load": {
            "type": "concurrent",
            "stages": [{"num_requests": requests_at(args, level), "concurrency_level": level}],
            "num_workers": args.peer_workers,  # its default is the machine's CPU count
        },
        "server": {"type": "vllm", "model_name": args.model, "base_url": args.url, "ignore_eos": True},
        "tokenizer": {"pretrained_model_name_or_path": str(args.tokenizer)},
        "storage": {"local_storage": {"path": str(reports)}},
        # output tokens as the server reports them (as llmscale bench and guidellm count them),
        # not by re-tokenising the streamed text
        "report": {
            "request_lifecycle": {
                "summary": True,
                "per_stage": True,
                "per_request": True,
                "use_server_output_tokens": True,
            }
        },
    }
    path = work / f"inference-perf-{level}.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    run([str(args.peers_venv / "bin" / "inference-perf"), "-c", str(path)], work)
    summary = next(reports.rglob("summary_lifecycle_metrics.json"))
    data = json.loads(summary.read_text())
    successes = data["successes"]["latency"]

    def stat(name: str, which: str) -> float:
        return float(successes[name][which]) * 1000

    # its start ramp (it has no setting for one): when the level-th request started after the
    # first, i.e. when its last stream began
    entries = json.loads(next(reports.rglob("per_request_lifecycle_metrics.json")).read_text())
    starts = sorted(float(entry["start_time"]) for entry in entries)
    ramp = starts[min(level, len(starts)) - 1] - starts[0]
    # its summary's "inter_token_latency" gives each token of the streamed text, re-tokenised,
    # a time (a chunk that re-tokenises into k tokens adds k - 1 zero gaps: docs/bench.md), so
    # its ITL is taken from its own per-request chunk times: every gap between chunks, pooled,
    # as llmscale bench and vLLM count ITL. "time_per_output_token" is per request, (last -
    # first token) / (server's tokens - 1), as llmscale bench's TPOT.
    gaps = [
        later - earlier
        for entry in entries
        if not entry.get("error")
        for times in [entry["info"]["response_metrics"].get("chunk_times") or []]
        for earlier, later in itertools.pairwise(times)
    ]
    return {
        "ttft": stat("time_to_first_token", "median"),
        "itl": statistics.median(gaps) * 1000 if gaps else None,
        "tpot": stat("time_per_output_token", "median"),
        "e2e": stat("request_latency", "median"),
        "ttft_mean": stat("time_to_first_token", "mean"),
        "itl_mean": statistics.fmean(gaps) * 1000 if gaps else None,
        "tpot_mean": stat("time_per_output_token", "mean"),
        "e2e_mean": stat("request_latency", "mean"),
        "ramp_ms": ramp * 1000,
    }


def server_totals(url: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of each of `SERVER_FAMILIES` on the server's /metrics, over all its labels."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=10) as response:
            text = response.read().decode()
    except (OSError, ValueError) as exc:
        sys.exit(f"--url {url}: cannot read its /metrics ({exc})")
    totals = {key: (0.0, 0.0) for key in SERVER_FAMILIES}
    names = {family: key for key, family in SERVER_FAMILIES.items()}
    for family in text_string_to_metric_families(text):
        key = names.get(family.name)
        if key is None:
            continue
        total, count = totals[key]
        for sample in family.samples:
            if sample.name == f"{family.name}_sum":
                total += sample.value
            elif sample.name == f"{family.name}_count":
                count += sample.value
        totals[key] = (total, count)
    return totals


def server_means(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]) -> Figures:
    """The engine's mean of each figure (ms) over the requests between two `server_totals`."""
    means: Figures = {}
    for key in SERVER_FAMILIES:
        total = after[key][0] - before[key][0]
        count = after[key][1] - before[key][1]
        means[f"server_{key}"] = total / count * 1000 if count > 0 else None
    return means


def with_engine_means(url: str, measure: Callable[[], Figures]) -> Figures:
    """One tool's run, with the engine's own means over exactly its requests added."""
    before = server_totals(url)
    figures = measure()
    return figures | server_means(before, server_totals(url))


def smoke() -> int:
    """`--smoke`: llmscale bench's column at concurrency 1 against a local emulator, through the
    same code and table as the full run; the peers need their own venv and are not run."""
    from bench_loadgen import start_emulator

    process, url = start_emulator()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
            args = argparse.Namespace(url=url, model="m", requests=4, stagger=0.1)
            figures = ours(args, 1, Path(tmp))
    finally:
        process.terminate()
        process.wait(timeout=30)
    print_table([{"concurrency": 1, "tool": "llmscale bench", **figures}])
    print("smoke run: guidellm and inference-perf are not run (they need --peers-venv)")
    return 0 if all((figures[k] or 0.0) > 0 for k in ("ttft", "itl", "tpot", "e2e")) else 1


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def print_table(rows: list[dict[str, Any]]) -> None:
    """ITL pools every gap between chunks; TPOT is each request's mean gap (see docs/bench.md):
    each peer is compared on the figures it defines the same way ("-" where it has none)."""
    print(
        "| concurrency | tool | TTFT p50 ms | ITL p50 ms | TPOT p50 ms | e2e p50 ms "
        "| vs llmscale bench (TTFT / ITL / TPOT / e2e) |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        reference = (
            MATCHED if row["tool"] == "inference-perf" and row["concurrency"] > 1 else "llmscale bench"
        )
        base = next(r for r in rows if r["concurrency"] == row["concurrency"] and r["tool"] == reference)
        ratios = " / ".join(_cell(_ratio(row.get(k), base.get(k)), 2) for k in KEYS)
        figures = f"{_cell(row['ttft'], 1)} | {_cell(row.get('itl'), 2)} | {_cell(row.get('tpot'), 2)}"
        print(f"| {row['concurrency']} | {row['tool']} | {figures} | {_cell(row['e2e'], 0)} | {ratios} |")


def engine_ratio(figures: Figures, key: str) -> float | None:
    """A tool's mean of one figure over the engine's own mean for the same requests."""
    tool, server = figures.get(f"{key}_mean"), figures.get(f"server_{key}")
    return None if tool is None or not server else tool / server


def print_engine_table(runs: dict[tuple[int, str], list[Figures]]) -> None:
    """Each tool against the engine it loaded, run by run: the tool's mean over the engine's own
    mean for the same requests (the sums and counts of the engine's histograms), i.e. how the
    tool's clock reads what the engine did; then a peer's ratio over ours (medians over
    repeats). A CPU engine's speed drifts by tens of per cent between runs and a run's medians
    move with the streams' phases; these ratios divide both out, so they compare the tools'
    timing rather than the engine's speed. Means, because the histograms give them exactly
    (percentiles only to a bucket's width)."""
    print(
        "| concurrency | tool | engine's TTFT / ITL / TPOT / e2e mean ms | tool's mean / engine's "
        "(TTFT / ITL / TPOT / e2e) | vs llmscale bench, engine-referenced |"
    )
    print("|---|---|---|---|---|")
    for (level, tool), repeats in runs.items():
        compared_with = MATCHED if tool == "inference-perf" and level > 1 else "llmscale bench"
        reference = runs.get((level, compared_with), [])
        server = " / ".join(_cell(_median([f.get(f"server_{k}") for f in repeats]), 1) for k in KEYS)
        own = {k: _median([engine_ratio(f, k) for f in repeats]) for k in KEYS}
        base = {k: _median([engine_ratio(f, k) for f in reference]) for k in KEYS}
        ratios = " / ".join(_cell(own[k], 2) for k in KEYS)
        relative = " / ".join(_cell(_ratio(own[k], base[k]), 2) for k in KEYS)
        print(f"| {level} | {tool} | {server} | {ratios} | {relative} |")


def print_saved(path: Path) -> int:
    try:
        saved = json.loads(path.read_text())
        runs = {(int(r["concurrency"]), str(r["tool"])): list(r["repeats"]) for r in saved["runs"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        sys.exit(f"--tables-from {path}: not a bench_peers --json file ({exc})")
    print_table(saved["medians"])
    print()
    print_engine_table(runs)
    return 0


def _ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def _cell(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


NEEDED = ("url", "model", "peers_venv", "tokenizer")


def main() -> int:
    if SMOKE:
        return smoke()
    global OUTPUT_TOKENS  # --output-tokens overrides the module default every tool reads
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--model")
    parser.add_argument("--peers-venv", type=Path)
    parser.add_argument("--tokenizer", type=Path)
    parser.add_argument("--emulator", action="store_true")
    parser.add_argument("--levels", default="1,4,16")
    parser.add_argument(
        "--requests", type=int, default=40,
        help=f"requests per level and tool (at least {MIN_ROUNDS} x the concurrency)",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of every tool at every level, interleaved; medians"
    )
    parser.add_argument("--output-tokens", type=int, default=OUTPUT_TOKENS)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument(
        "--peers", default="guidellm,inference-perf", help="which peers to run (comma-separated)"
    )
    parser.add_argument(
        "--stagger", type=float, default=0.1,
        help="seconds over which llmscale bench and guidellm start their clients "
        "(inference-perf has no such setting)",
    )  # fmt: skip
    parser.add_argument(
        "--peer-workers", type=int, default=len(os.sched_getaffinity(0)),
        help="worker processes of guidellm and inference-perf (default: the cores this script may "
        "run on, one under taskset -c 0; llmscale bench is one process)",
    )  # fmt: skip
    parser.add_argument(
        "--tables-from", type=Path, default=None,
        help="print the tables from a --json file of an earlier run (no load is sent)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.tables_from is not None:
        return print_saved(args.tables_from)
    missing = [f"--{name.replace('_', '-')}" for name in NEEDED if getattr(args, name) is None]
    if len(missing) == len(NEEDED):
        # `make bench` runs every benchmark without arguments; this one needs the peers' venv
        # and an engine to load, which only a person running the comparison sets up
        print(
            "bench_peers: not run: it needs an engine to load and the peers' venv (--url, --model, "
            "--peers-venv, --tokenizer; docs/bench.md); `make bench-smoke` runs its own column"
        )
        return 0
    if missing:
        parser.error(f"{', '.join(missing)} required")
    if args.peer_workers < 1:
        parser.error(f"--peer-workers: {args.peer_workers} is not a positive count")
    OUTPUT_TOKENS = args.output_tokens
    runs: dict[tuple[int, str], list[Figures]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        work = Path(tmp)
        # repeats interleave the tools (ours, peers, ours, ...) so a drift of the machine's speed
        # during the comparison falls on every tool alike; each figure is the median over repeats
        for repeat in range(args.repeats):
            for level in (int(x) for x in args.levels.split(",")):
                for tool, fn in (
                    ("llmscale bench", ours),
                    ("guidellm", guidellm),
                    ("inference-perf", inference_perf),
                ):
                    if tool != "llmscale bench" and tool not in args.peers.split(","):
                        continue
                    figures = with_engine_means(args.url, functools.partial(fn, args, level, work))
                    runs.setdefault((level, tool), []).append(figures)
                    print(f"repeat {repeat + 1} c={level} {tool}: {figures}", file=sys.stderr, flush=True)
                    if tool == "inference-perf" and level > 1:
                        # ours again with inference-perf's own start ramp: client i of N starts
                        # at i x window / N, so the last one at the ramp inference-perf took
                        window = (figures["ramp_ms"] or 0.0) / 1000 * level / (level - 1)
                        rerun = functools.partial(ours, args, level, work, stagger=window)
                        again = with_engine_means(args.url, rerun)
                        runs.setdefault((level, MATCHED), []).append(again)
                        print(
                            f"repeat {repeat + 1} c={level} {MATCHED}: {again}", file=sys.stderr, flush=True
                        )
    rows = [
        {"concurrency": level, "tool": tool} | {key: _median([f[key] for f in figures]) for key in figures[0]}
        for (level, tool), figures in runs.items()
    ]
    print_table(rows)
    print()
    print_engine_table(runs)
    if args.json:
        every = [{"concurrency": c, "tool": t, "repeats": figures} for (c, t), figures in runs.items()]
        args.json.write_text(json.dumps({"medians": rows, "runs": every}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

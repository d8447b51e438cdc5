"""`llmscale bench` against the emulator on 127.0.0.1: agreement with the model, errors, JSON schema."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest
from bench_helpers import emulator_thread

from llmscale.bench.load import Level
from llmscale.bench.report import Progress
from llmscale.bench.run import BenchSettings, run_sync
from llmscale.bench.stats import Slo
from llmscale.bench.workload import fixed_workload
from llmscale.cli import main
from llmscale.sim.engine import ContinuousBatchingEngine
from llmscale.sim.perfmodel import ReplicaPerformanceModel
from llmscale_tools.emulator.config import EmulatorConfig
from llmscale_tools.emulator.expect import closed_loop_medians

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
# L4: ~35 ms steps, long next to event-loop jitter; speed-up 2 halves the test's wall time.
GPU = "L4"
SPEEDUP = 2.0
PROMPT_TOKENS = 600
OUTPUT_TOKENS = 10
# Tolerance: medians within 25 % of the model plus 15 ms of wall-clock jitter (in model time).
RELATIVE_TOLERANCE = 0.25
ABSOLUTE_TOLERANCE_SECONDS = 0.015 * SPEEDUP

LEVEL_KEYS = {
    "level", "mode", "concurrency", "rate_rps", "requests", "completed", "errors", "error_kinds",
    "error_examples", "duration_s", "request_throughput_rps", "output_throughput_tok_s",
    "prompt_throughput_tok_s", "output_tokens", "goodput_fraction", "goodput_rps", "meets_slo",
    "peak_in_flight",
    *(f"{m}_{s}_s" for m in ("ttft", "itl", "tpot", "e2e") for s in ("mean", "p50", "p90", "p95", "p99")),
}  # fmt: skip
REPORT_KEYS = {"url", "model", "api", "workload", "slo", "percentile_method", "levels", "capacity_hint"}


def settings(url: str, levels: list[Level], requests: int, **extra: Any) -> BenchSettings:
    values: dict[str, Any] = {
        "url": url,
        "model": None,
        "api": None,
        "levels": tuple(levels),
        "requests": requests,
        "duration_seconds": None,
        "timeout_seconds": 30.0,
        "slo": Slo(2.0, 0.1),
    }
    values.update(extra)
    return BenchSettings(**values)


def model_medians(concurrency: int, total: int) -> tuple[float, float]:
    engine = ContinuousBatchingEngine(ReplicaPerformanceModel.for_deployment(MODEL, GPU))
    return closed_loop_medians(
        engine,
        concurrency=concurrency,
        total_requests=total,
        prompt_tokens=PROMPT_TOKENS,
        output_tokens=OUTPUT_TOKENS,
    )


def test_measured_ttft_and_itl_agree_with_the_model() -> None:
    plan = [(1, 4), (8, 16)]
    config = EmulatorConfig(model=MODEL, gpu=GPU, port=0, speedup=SPEEDUP)
    workload, info = fixed_workload(PROMPT_TOKENS, OUTPUT_TOKENS)
    with emulator_thread(config) as url:
        # the model's expectation (closed_loop_medians) starts every client at once
        reports = [
            run_sync(
                settings(url, [Level("concurrency", c)], n, stagger_seconds=0.0),
                workload,
                info,
                Progress(enabled=False),
            )
            for c, n in plan
        ]
    for (concurrency, total), report in zip(plan, reports, strict=True):
        level = report["levels"][0]
        assert level["errors"] == 0
        assert level["completed"] == total
        assert level["peak_in_flight"] == concurrency
        expected_ttft, expected_itl = model_medians(concurrency, total)
        ttft = level["ttft_p50_s"] * SPEEDUP
        itl = level["itl_p50_s"] * SPEEDUP
        assert abs(ttft - expected_ttft) <= RELATIVE_TOLERANCE * expected_ttft + ABSOLUTE_TOLERANCE_SECONDS, (
            concurrency,
            ttft,
            expected_ttft,
        )
        assert abs(itl - expected_itl) <= RELATIVE_TOLERANCE * expected_itl + ABSOLUTE_TOLERANCE_SECONDS, (
            concurrency,
            itl,
            expected_itl,
        )
        # every output token but the first is one inter-token gap
        assert level["output_tokens"] == total * OUTPUT_TOKENS


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = main(["bench", *argv], commands=(("bench", "llmscale.bench.cli"),))
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def fast_emulator() -> Any:
    config = EmulatorConfig(model=MODEL, gpu="H100-80GB", port=0, served_model_names=("m",))
    with emulator_thread(config) as url:
        yield url


def test_json_schema_is_stable(fast_emulator: str) -> None:
    status, out, _ = run_cli(
        "--url", fast_emulator, "--concurrency", "1,2", "--rate", "20", "--requests", "4",
        "--output-tokens", "3", "--json", "--no-progress",
    )  # fmt: skip
    assert status == 0
    report = json.loads(out)
    assert set(report) == REPORT_KEYS
    assert [level["level"] for level in report["levels"]] == ["concurrency 1", "concurrency 2", "rate 20/s"]
    for level in report["levels"]:
        assert set(level) == LEVEL_KEYS
        assert level["requests"] == 4 and level["errors"] == 0
    assert report["levels"][2]["rate_rps"] == 20.0 and report["levels"][2]["concurrency"] is None
    assert report["model"] == "m"
    assert report["capacity_hint"]["field"] == "spec.scaling.capacityHint"
    assert report["slo"] == {"ttft_p95_s": 2.0, "itl_p95_s": 0.1}


def test_http_errors_and_timeouts_are_counted(fast_emulator: str) -> None:
    status, out, _ = run_cli(
        "--url", fast_emulator, "--concurrency", "2", "--requests", "3", "--input-tokens", "135000",
        "--json", "--no-progress",
    )  # fmt: skip
    level = json.loads(out)["levels"][0]
    assert status == 1  # nothing succeeded
    assert level["errors"] == 3 and level["error_kinds"] == {"HTTP 400": 3}
    assert "maximum context length" in level["error_examples"]["HTTP 400"]

    status, out, _ = run_cli(
        "--url", fast_emulator, "--concurrency", "1", "--requests", "2", "--output-tokens", "2000",
        "--timeout", "0.2", "--json", "--no-progress",
    )  # fmt: skip
    level = json.loads(out)["levels"][0]
    assert level["error_kinds"] == {"timeout": 2}
    assert level["meets_slo"] is False


def test_table_output_and_capacity_hint_line(fast_emulator: str) -> None:
    status, out, err = run_cli(
        "--url", fast_emulator, "--concurrency", "1", "--requests", "3", "--output-tokens", "3"
    )
    assert status == 0
    assert "TTFT p50/p95/p99 ms" in out
    assert "set spec.scaling.capacityHint:" in out
    assert "concurrency 1: 3/3 ok" in err  # progress lines on stderr (not a TTY here)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--url", "http://127.0.0.1:9"], "cannot reach http://127.0.0.1:9"),
        (["--url", "localhost:8000"], "--url: value 'localhost:8000'"),
        (["--url", "http://127.0.0.1:9", "--concurrency", "0"], "--concurrency: value '0'"),
        (["--url", "http://127.0.0.1:9", "--rate", "fast"], "--rate: value 'fast'"),
        (["--url", "http://127.0.0.1:9", "--slo-ttft", "soon"], "--slo-ttft: value 'soon'"),
        (["--url", "http://127.0.0.1:9", "--output-tokens", "0"], "--output-tokens: value 0"),
    ],
)
def test_bad_input_and_dead_endpoint_end_with_one_line(argv: list[str], message: str) -> None:
    status, out, err = run_cli(*argv, "--no-progress")
    assert status != 0
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def test_wrong_model_name_is_refused_naming_the_served_ones(fast_emulator: str) -> None:
    status, _, err = run_cli("--url", fast_emulator, "--model", "gpt-4", "--no-progress")
    assert status == 2
    assert "--model: value 'gpt-4' is not served" in err and "it serves m" in err


async def serve_completions(handler: Any) -> tuple[Any, int]:
    """A loopback server whose POST /v1/completions is `handler`: (runner to clean up, port)."""
    from aiohttp import web

    app = web.Application()
    app.router.add_post("/v1/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, runner.addresses[0][1]


def test_closed_loop_clients_start_staggered_over_the_window() -> None:
    """4 clients, stagger 0.6 s: client i sends its first request at i x 0.15 s (i = 0..3)."""
    import asyncio
    import time

    from aiohttp import web

    from llmscale.bench.client import Target
    from llmscale.bench.load import LevelPlan, new_session, run_level

    arrivals: list[float] = []
    started: list[float] = []

    async def completions(_request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        await asyncio.sleep(2.0)  # every client holds its first request past the window
        return web.json_response({"choices": [{"text": "x", "finish_reason": "length"}], "usage": {}})

    async def scenario() -> None:
        runner, port = await serve_completions(completions)
        try:
            async with new_session() as session:
                plan = LevelPlan(Level("concurrency", 4), 4, None, 10.0, stagger_seconds=0.6)
                target = Target(f"http://127.0.0.1:{port}", "m", "completions")
                started.append(time.monotonic())
                await run_level(session, target, plan, lambda _i: (10, 1))
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    # Measured from the level's start: a client is never early (it sleeps until its slot; a
    # 5-ms allowance for the clocks), and a loaded machine may only make it late, so the upper
    # bound is loose. All at once (no stagger) would put the fourth first request at ~0 s.
    offsets = [t - started[0] for t in sorted(arrivals)]
    assert len(offsets) == 4, offsets
    for index, offset in enumerate(offsets):
        assert 0.15 * index - 0.005 <= offset <= 0.15 * index + 0.4, offsets


def test_ttft_is_timed_from_the_send_not_from_the_call() -> None:
    """A client that takes 0.3 s between the call and the send (here a slow `on_request_start`
    trace; in a loaded client, the event loop or the pool) must not report it as server TTFT:
    with `timing_trace()` the clock starts when the headers are on the wire, as guidellm's does.
    The server answers its first token 50 ms after the request arrives."""
    import asyncio

    import aiohttp
    from aiohttp import web

    from llmscale.bench.client import Target, send_request, timing_trace

    async def completions(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await asyncio.sleep(0.05)
        await response.write(b'data: {"choices": [{"text": "x"}]}\n\n')
        await response.write(b'data: {"choices": [], "usage": {"completion_tokens": 1}}\n\n')
        await response.write(b"data: [DONE]\n\n")
        return response

    async def slow_start(_session: object, _context: object, _params: object) -> None:
        await asyncio.sleep(0.3)

    async def scenario() -> tuple[float, float]:
        runner, port = await serve_completions(completions)
        target = Target(f"http://127.0.0.1:{port}", "m", "completions")
        slow = aiohttp.TraceConfig()
        slow.on_request_start.append(slow_start)
        ttfts = []
        try:
            for traces in ([slow, timing_trace()], [slow]):
                async with aiohttp.ClientSession(trace_configs=traces) as session:
                    result = await send_request(session, target, 10, 1, 10.0)
                assert result.ok and result.ttft_seconds is not None, result
                ttfts.append(result.ttft_seconds)
        finally:
            await runner.cleanup()
        return ttfts[0], ttfts[1]

    from_send, from_call = asyncio.run(scenario())
    assert 0.05 <= from_send < 0.3
    assert from_call >= 0.35


def test_prompt_id_is_spelled_first_in_the_same_words() -> None:
    """9 = 11 in base 8: digits 1, 1 (least significant first) -> "of of", then the fixed
    sequence from its third word ("to and is"); id 0 keeps the plain sequence."""
    from llmscale.bench.client import prompt_text

    assert prompt_text(5, 9) == "of of to and is"
    assert prompt_text(3, 0) == "the of to"
    assert len(prompt_text(200, 2**40 - 1).split()) == 200  # 14 id words, then 186 more


def test_every_request_of_every_run_sends_its_own_prompt() -> None:
    """A server's prefix cache must not serve one request's prompt from another's: two levels
    of 12 requests each (as a sweep or a tool comparison runs them) send 24 different prompts,
    which differ in their first word within a level (consecutive ids)."""
    import asyncio

    from aiohttp import web

    from llmscale.bench.client import Target
    from llmscale.bench.load import LevelPlan, new_session, run_level

    prompts: list[str] = []

    async def completions(request: web.Request) -> web.Response:
        prompts.append((await request.json())["prompt"])
        return web.json_response({"choices": [{"text": "x", "finish_reason": "length"}], "usage": {}})

    async def scenario() -> None:
        runner, port = await serve_completions(completions)
        try:
            async with new_session() as session:
                target = Target(f"http://127.0.0.1:{port}", "m", "completions")
                for _ in range(2):
                    plan = LevelPlan(Level("concurrency", 3), 12, None, 10.0)
                    await run_level(session, target, plan, lambda _i: (40, 1))
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
    assert len(prompts) == 24
    assert len(set(prompts)) == 24
    # 12 consecutive ids cover every residue mod 8: all eight words open a prompt
    assert len({prompt.split()[0] for prompt in prompts[:12]}) == 8
    assert all(len(prompt.split()) == 40 for prompt in prompts)

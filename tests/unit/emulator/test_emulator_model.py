"""The emulator driven by the real replica performance model agrees with the model.

The model's prediction comes from replaying the same closed-loop load offline through a fresh
ContinuousBatchingEngine (llmscale_tools.emulator.expect), so the comparison isolates what the
real-time loop and HTTP add. Llama-3.1-8B on L4 is used because its steps are long (~35 ms),
which keeps event-loop jitter small next to them; speed-up 4 keeps the test short.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from llmscale.sim.engine import ContinuousBatchingEngine
from llmscale.sim.perfmodel import ReplicaPerformanceModel
from llmscale_tools.emulator.app import start_emulator
from llmscale_tools.emulator.config import EmulatorConfig
from llmscale_tools.emulator.expect import closed_loop_medians

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
GPU = "L4"
SPEEDUP = 4.0
PROMPT_TOKENS = 600
OUTPUT_TOKENS = 12
# Tolerance: medians within 25 % of the model, plus 15 ms of wall-clock jitter scaled to model time.
RELATIVE_TOLERANCE = 0.25
ABSOLUTE_TOLERANCE_SECONDS = 0.015 * SPEEDUP


async def one_request(session: aiohttp.ClientSession, url: str) -> tuple[float, list[float]]:
    body = {
        "model": MODEL,
        "prompt": "x",
        "llmscale_prompt_tokens": PROMPT_TOKENS,
        "max_tokens": OUTPUT_TOKENS,
        "stream": True,
    }
    sent = time.monotonic()
    arrivals: list[float] = []
    async with session.post(f"{url}/v1/completions", json=body) as response:
        assert response.status == 200
        async for raw in response.content:
            line = raw.decode().strip()
            if line.startswith("data: {"):
                arrivals.append(time.monotonic())
    ttft = (arrivals[0] - sent) * SPEEDUP
    gaps = [(b - a) * SPEEDUP for a, b in itertools.pairwise(arrivals)]
    return ttft, gaps


async def closed_loop(url: str, concurrency: int, total: int) -> list[tuple[float, list[float]]]:
    results: list[tuple[float, list[float]]] = []
    remaining = total

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            results.append(await one_request(session, url))

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return results


def model_says(concurrency: int, total: int) -> tuple[float, float]:
    engine = ContinuousBatchingEngine(ReplicaPerformanceModel.for_deployment(MODEL, GPU))
    return closed_loop_medians(
        engine,
        concurrency=concurrency,
        total_requests=total,
        prompt_tokens=PROMPT_TOKENS,
        output_tokens=OUTPUT_TOKENS,
    )


def close_to(measured: float, expected: float) -> bool:
    return abs(measured - expected) <= RELATIVE_TOLERANCE * expected + ABSOLUTE_TOLERANCE_SECONDS


def test_ttft_grows_with_load_as_the_model_says() -> None:
    async def main() -> dict[int, tuple[float, float]]:
        config = EmulatorConfig(model=MODEL, gpu=GPU, port=0, speedup=SPEEDUP)
        emu = await start_emulator(config)
        try:
            measured = {}
            for concurrency, total in ((1, 4), (8, 16)):
                results = await closed_loop(emu.url, concurrency, total)
                ttft = statistics.median(r[0] for r in results)
                itl = statistics.median(g for r in results for g in r[1])
                measured[concurrency] = (ttft, itl)
            return measured
        finally:
            await emu.drain_and_stop(timeout_seconds=2.0)

    measured = asyncio.run(main())
    for concurrency, total in ((1, 4), (8, 16)):
        expected_ttft, expected_itl = model_says(concurrency, total)
        ttft, itl = measured[concurrency]
        assert close_to(ttft, expected_ttft), (concurrency, ttft, expected_ttft)
        assert close_to(itl, expected_itl), (concurrency, itl, expected_itl)
    # eight prompts prefilled together: TTFT several times the lone request's, as modelled
    assert measured[8][0] > 2 * measured[1][0]


def test_sigterm_drains_in_flight_request_then_exits() -> None:
    repo = Path(__file__).resolve().parents[3]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmscale_tools.emulator",  # = `llmscale emulate`, without importing the other commands
            "--port",
            "0",
            "--gpu",
            GPU,
            "--served-model-name",
            "m",
        ],
        cwd=repo,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        assert " at http://" in banner, banner
        url = banner.rsplit(" at ", 1)[1].strip()

        async def main() -> tuple[int, dict[str, object]]:
            async with aiohttp.ClientSession() as session:
                body = {"model": "m", "prompt": "x", "max_tokens": 20, "stream": True}
                async with session.post(f"{url}/v1/completions", json=body) as response:
                    await response.content.readline()  # first token is out: the request is in flight
                    process.send_signal(signal.SIGTERM)
                    await asyncio.sleep(0.05)
                    async with session.get(f"{url}/health") as health:
                        health_status = health.status
                    chunks = [raw async for raw in response.content if raw.startswith(b"data: {")]
            last = json.loads(chunks[-1].decode()[len("data: ") :])
            return health_status, last

        health_status, last = asyncio.run(main())
        assert health_status == 503
        assert last["choices"][0]["finish_reason"] == "length"
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_a_lone_huge_prompt_counts_as_prefill_not_queue_time() -> None:
    """vLLM's queue time ends when the scheduler first takes the request; a 100k-token prompt
    on an idle engine is chunk-prefilled for seconds after that, and all of it is prefill."""
    speedup = 20.0

    async def main() -> str:
        config = EmulatorConfig(model=MODEL, gpu="H100-80GB", port=0, speedup=speedup)
        emu = await start_emulator(config)
        try:
            body = {"model": MODEL, "prompt": "x", "llmscale_prompt_tokens": 100_000, "max_tokens": 2}
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{emu.url}/v1/completions", json=body) as response:
                    assert response.status == 200
                async with session.get(f"{emu.url}/metrics") as response:
                    return await response.text()
        finally:
            await emu.drain_and_stop(timeout_seconds=2.0)

    page = asyncio.run(main())
    sums = {
        line.split("{")[0]: float(line.rsplit(" ", 1)[1])
        for line in page.splitlines()
        if line.startswith(("vllm:request_queue_time_seconds_sum", "vllm:request_prefill_time_seconds_sum"))
    }
    # an idle engine schedules it at once (allow 10 ms of wall-clock lag x speed-up)
    assert sums["vllm:request_queue_time_seconds_sum"] < 0.01 * speedup
    # 100k tokens of an 8B model take seconds of prefill on one H100 (the issue measured ~8 s)
    assert sums["vllm:request_prefill_time_seconds_sum"] > 3.0

"""Load generation: closed-loop concurrency levels and open-loop Poisson rates.

Closed loop: `concurrency` workers each send a request, wait for it to finish, send the next
(vLLM's benchmark_serving with --max-concurrency and infinite rate). The workers start spread
evenly over `stagger_seconds` (worker i after i x stagger / concurrency), as guidellm and
inference-perf ramp theirs: started in one instant, 16 prompts would be prefilled together and
the first TTFTs would measure that synthetic burst instead of the steady state. Open loop: arrivals
follow a Poisson process of the given rate (exponential gaps from a seeded generator), sent
whatever the server's state, so queueing shows up as it would in production. A level ends
after `requests` requests were sent or `duration` seconds passed, whichever comes first,
then waits for the requests in flight.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp

from llmscale.bench.client import Target, prompt_ids, send_request, timing_trace
from llmscale.bench.stats import RequestResult

Mode = Literal["concurrency", "rate"]
# Called after every finished request: (finished, errors, in flight).
ProgressHook = Callable[[int, int, int], None]


@dataclass(frozen=True)
class Level:
    mode: Mode
    value: float  # concurrency (clients) or rate (requests/s)

    @property
    def label(self) -> str:
        return f"concurrency {int(self.value)}" if self.mode == "concurrency" else f"rate {self.value:g}/s"


@dataclass(frozen=True)
class LevelPlan:
    level: Level
    requests: int | None  # stop sending after this many (None: until duration)
    duration_seconds: float | None
    timeout_seconds: float
    seed: int = 0
    stagger_seconds: float = 0.0  # closed loop: spread worker starts over this window


@dataclass
class LevelRun:
    level: Level
    results: list[RequestResult]
    wall_seconds: float
    peak_in_flight: int


Workload = Callable[[int], tuple[int, int]]  # request index -> (prompt tokens, output tokens)


class _Tracker:
    def __init__(self, hook: ProgressHook | None) -> None:
        self.results: list[RequestResult] = []
        self.errors = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.hook = hook

    def started(self) -> None:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def finished(self, result: RequestResult) -> None:
        self.in_flight -= 1
        self.results.append(result)
        self.errors += 0 if result.ok else 1
        if self.hook is not None:
            self.hook(len(self.results), self.errors, self.in_flight)


def new_session() -> aiohttp.ClientSession:
    # no client-side connection cap: an open-loop level must never queue in the pool
    # (that would show up as server TTFT); keep-alive lets a closed loop reuse sockets
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), trace_configs=[timing_trace()]
    )


async def run_level(
    session: aiohttp.ClientSession,
    target: Target,
    plan: LevelPlan,
    workload: Workload,
    progress: ProgressHook | None = None,
) -> LevelRun:
    tracker = _Tracker(progress)
    start = time.monotonic()
    deadline = start + plan.duration_seconds if plan.duration_seconds is not None else None
    sent = 0
    ids = prompt_ids()

    def may_send() -> bool:
        if plan.requests is not None and sent >= plan.requests:
            return False
        return deadline is None or time.monotonic() < deadline

    async def one(index: int) -> None:
        prompt_tokens, output_tokens = workload(index)
        tracker.started()
        result = await send_request(
            session, target, prompt_tokens, output_tokens, plan.timeout_seconds, next(ids)
        )
        tracker.finished(result)

    if plan.level.mode == "concurrency":
        workers = int(plan.level.value)

        async def worker(position: int) -> None:
            nonlocal sent
            if plan.stagger_seconds > 0 and position > 0:
                await asyncio.sleep(position * plan.stagger_seconds / workers)
            while may_send():
                index = sent
                sent += 1
                await one(index)

        await asyncio.gather(*(worker(position) for position in range(workers)))
    else:
        rng = random.Random(plan.seed)
        tasks: list[asyncio.Task[None]] = []
        next_at = start
        while may_send():
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if not may_send():
                break
            tasks.append(asyncio.create_task(one(sent)))
            sent += 1
            next_at += rng.expovariate(plan.level.value)
        await asyncio.gather(*tasks)
    wall = time.monotonic() - start
    return LevelRun(plan.level, tracker.results, wall, tracker.peak_in_flight)

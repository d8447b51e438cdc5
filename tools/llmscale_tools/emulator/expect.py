"""What the emulator's model predicts for a load, by replaying it offline through the same engine.

Used by tests and benchmarks to compare what a client measures against the emulator with what
the model says: closed-loop (`concurrency` clients, each sends its next request the moment the
previous one finishes) or open-loop (given arrival times). Time is simulated, so this runs in
milliseconds and is exactly reproducible.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmscale_tools.emulator.runtime import StepEngine


@dataclass
class RequestTimeline:
    arrival_seconds: float
    prompt_tokens: int
    output_tokens: int
    token_seconds: list[float] = field(default_factory=list)

    @property
    def ttft_seconds(self) -> float:
        return self.token_seconds[0] - self.arrival_seconds

    @property
    def itl_seconds(self) -> list[float]:
        return [b - a for a, b in itertools.pairwise(self.token_seconds)]

    @property
    def e2e_seconds(self) -> float:
        return self.token_seconds[-1] - self.arrival_seconds


def replay(
    engine: StepEngine,
    arrivals: Sequence[tuple[float, int, int]],
    *,
    concurrency: int | None = None,
    total_requests: int | None = None,
    next_request: Callable[[int], tuple[int, int]] | None = None,
) -> list[RequestTimeline]:
    """Replay through `engine`; returns every request's timeline (in arrival order).

    Open loop: `arrivals` = (time, prompt tokens, output tokens). Closed loop: give
    `concurrency`, `total_requests` and `next_request(index) -> (prompt, output)`; the
    first `concurrency` requests arrive at time 0 and each completion starts the next one.
    """
    pending: list[tuple[float, int, int]] = sorted(arrivals)
    timelines: dict[str, RequestTimeline] = {}
    order: list[str] = []
    started = 0

    def add(now: float, prompt: int, output: int) -> None:
        nonlocal started
        request_id = f"r{len(order)}"
        engine.add_request(request_id, prompt, output, now)
        timelines[request_id] = RequestTimeline(now, prompt, output)
        order.append(request_id)
        started += 1

    closed = concurrency is not None and next_request is not None and total_requests is not None
    if closed:
        assert concurrency is not None and next_request is not None and total_requests is not None
        for index in range(min(concurrency, total_requests)):
            add(0.0, *next_request(index))
    now = 0.0
    while True:
        while pending and pending[0][0] <= now:
            arrival, prompt, output = pending.pop(0)
            add(arrival, prompt, output)
        if engine.num_running + engine.num_waiting == 0:
            if not pending:
                break
            now = pending[0][0]
            continue
        outcome = engine.step(now)
        if outcome.duration_seconds <= 0:
            if not pending:
                raise RuntimeError("engine cannot make progress (a request never fits)")
            now = pending[0][0]
            continue
        now += outcome.duration_seconds
        for request_id in outcome.token_ids:
            timelines[request_id].token_seconds.append(now)
        for _ in outcome.finished_ids:
            if (
                closed
                and total_requests is not None
                and next_request is not None
                and started < total_requests
            ):
                add(now, *next_request(started))
    return [timelines[request_id] for request_id in order]


def closed_loop_medians(
    engine: StepEngine, *, concurrency: int, total_requests: int, prompt_tokens: int, output_tokens: int
) -> tuple[float, float]:
    """The model's median TTFT and median inter-token gap (seconds) for a closed-loop load of
    fixed-size requests: what a benchmark client at that concurrency should measure."""
    timelines = replay(
        engine,
        [],
        concurrency=concurrency,
        total_requests=total_requests,
        next_request=lambda _index: (prompt_tokens, output_tokens),
    )
    ttft = statistics.median(t.ttft_seconds for t in timelines)
    itl = statistics.median(gap for t in timelines for gap in t.itl_seconds)
    return ttft, itl

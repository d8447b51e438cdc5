"""The real-time engine loop: steps the modelled replica and delivers tokens to streams.

One asyncio task owns the step-level engine (llmscale.sim.engine.ContinuousBatchingEngine or
anything with its interface). Each iteration calls `step(now)`, sleeps the step's modelled
duration (divided by the speed-up), then hands every request its token. Model time is kept
on a schedule: when the event loop is a little late (under a few tens of milliseconds) the
next step starts where the previous one ended in model time, so small scheduling jitter
does not stretch the modelled latencies; a larger lag re-synchronises with the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Protocol

from llmscale_tools.emulator.metrics import VllmMetrics

# Beyond this wall-clock lag the loop stops trying to catch up and restarts model time at "now".
MAX_CATCH_UP_WALL_SECONDS = 0.05
# When the engine reports a zero-length step (nothing schedulable) wait this long before retrying.
IDLE_POLL_WALL_SECONDS = 0.005


class StepOutcome(Protocol):
    @property
    def duration_seconds(self) -> float: ...
    @property
    def first_token_ids(self) -> Collection[str]: ...
    @property
    def token_ids(self) -> Collection[str]: ...
    @property
    def finished_ids(self) -> Collection[str]: ...
    @property
    def preempted_ids(self) -> Collection[str]: ...
    @property
    def scheduled_ids(self) -> Collection[str]: ...
    @property
    def batch_tokens(self) -> int: ...


class StepEngine(Protocol):
    """The step-level engine interface agreed in docs (interfaces: Replica performance model)."""

    def add_request(
        self, request_id: str, prompt_tokens: int, max_output_tokens: int, now: float
    ) -> None: ...
    def step(self, now: float) -> StepOutcome: ...
    def cancel(self, request_id: str) -> None: ...
    @property
    def num_running(self) -> int: ...
    @property
    def num_waiting(self) -> int: ...
    @property
    def kv_cache_usage(self) -> float: ...


class ModelClock:
    """Model seconds since start; runs `speedup` times faster than the monotonic wall clock."""

    def __init__(self, speedup: float = 1.0) -> None:
        self.speedup = speedup
        self._wall_origin = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._wall_origin) * self.speedup

    def wall_seconds_until(self, model_time: float) -> float:
        return (model_time - self.now()) / self.speedup


@dataclass(eq=False)
class TokenStream:
    """One request's view of the engine: tokens arrive, then a finish reason."""

    request_id: str
    prompt_tokens: int
    max_tokens: int
    arrival_model_time: float
    finish_reason: str = "length"  # what the last token ends it with: "length" or "stop"
    tokens_generated: int = 0
    tokens_taken: int = 0
    finished_reason: str | None = None
    first_token_model_time: float | None = None
    first_token_step_start: float | None = None
    first_scheduled_model_time: float | None = None  # start of the first step that computed it
    preemptions: int = 0
    last_token_model_time: float | None = None
    _waiter: asyncio.Future[None] | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.finished_reason is not None

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_tokens(self) -> int:
        """Wait for new tokens; return how many arrived since the last call (0 = finished)."""
        while self.tokens_taken == self.tokens_generated and not self.done:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        fresh = self.tokens_generated - self.tokens_taken
        self.tokens_taken = self.tokens_generated
        return fresh

    async def wait_finished(self) -> None:
        while not self.done:
            await self.next_tokens()


class EngineLoop:
    """Owns the engine and the streams; `submit` and `cancel` are the only ways in."""

    def __init__(self, engine: StepEngine, metrics: VllmMetrics, clock: ModelClock) -> None:
        self.engine = engine
        self.metrics = metrics
        self.clock = clock
        self.streams: dict[str, TokenStream] = {}
        self._ids = itertools.count()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._schedule_end: float | None = None
        self._prompt_tokens_since = 0
        self._generation_tokens_since = 0
        self._throughput_since = 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="llmscale-engine-loop")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def in_flight(self) -> int:
        return len(self.streams)

    def submit(self, prompt_tokens: int, max_tokens: int, finish_reason: str = "length") -> TokenStream:
        request_id = f"req-{next(self._ids)}"
        now = self.clock.now()
        stream = TokenStream(request_id, prompt_tokens, max_tokens, arrival_model_time=now)
        stream.finish_reason = finish_reason
        self.engine.add_request(request_id, prompt_tokens, max_tokens, now)
        self.streams[request_id] = stream
        self._publish_scheduler_state()
        self._wakeup.set()
        return stream

    def cancel(self, stream: TokenStream) -> None:
        """Client went away: free its batch slot and KV cache, count it as aborted."""
        if stream.done:
            return
        self.engine.cancel(stream.request_id)
        self._finish(stream, "abort", self.clock.now())
        self._publish_scheduler_state()

    def _publish_scheduler_state(self) -> None:
        self.metrics.set_scheduler_state(
            running=self.engine.num_running,
            waiting=self.engine.num_waiting,
            kv_cache_usage=self.engine.kv_cache_usage,
        )

    def _finish(self, stream: TokenStream, reason: str, now: float) -> None:
        stream.finished_reason = reason
        self.streams.pop(stream.request_id, None)
        first = stream.first_token_model_time
        last = stream.last_token_model_time or now
        # queue time ends when the engine first schedules the request (vLLM's "scheduled"
        # event); a long prompt's chunked prefill after that counts as prefill, not queue
        step_start = stream.first_scheduled_model_time
        if step_start is None:
            step_start = stream.first_token_step_start
        queue_seconds = (step_start if step_start is not None else now) - stream.arrival_model_time
        self.metrics.record_finished(
            finished_reason=reason,
            prompt_tokens=stream.prompt_tokens,
            generation_tokens=stream.tokens_generated,
            e2e_seconds=now - stream.arrival_model_time,
            queue_seconds=max(0.0, queue_seconds),
            prefill_seconds=(first - step_start) if first is not None and step_start is not None else 0.0,
            decode_seconds=(last - first) if first is not None else 0.0,
            preemptions=stream.preemptions,
        )
        stream._wake()

    def _deliver(self, stream: TokenStream, step_start: float, step_end: float) -> None:
        if stream.tokens_generated == 0:
            stream.first_token_model_time = step_end
            stream.first_token_step_start = step_start
            self.metrics.ttft.observe(step_end - stream.arrival_model_time)
            self.metrics.prompt_tokens.inc(stream.prompt_tokens)
            self._prompt_tokens_since += stream.prompt_tokens
        elif stream.last_token_model_time is not None:
            self.metrics.itl.observe(step_end - stream.last_token_model_time)
        stream.tokens_generated += 1
        stream.last_token_model_time = step_end
        self.metrics.generation_tokens.inc()
        self._generation_tokens_since += 1
        stream._wake()

    def _next_step_start(self) -> float:
        now = self.clock.now()
        scheduled = self._schedule_end
        if scheduled is None or now <= scheduled:
            return now if scheduled is None else max(now, scheduled)
        lag_wall = (now - scheduled) / self.clock.speedup
        return scheduled if lag_wall <= MAX_CATCH_UP_WALL_SECONDS else now

    async def _run(self) -> None:
        while True:
            if self.engine.num_running + self.engine.num_waiting == 0:
                self._schedule_end = None
                self._publish_scheduler_state()
                self._update_throughput()
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            step_start = self._next_step_start()
            outcome = self.engine.step(step_start)
            step_end = step_start + max(0.0, outcome.duration_seconds)
            if outcome.duration_seconds <= 0 and not (outcome.token_ids or outcome.first_token_ids):
                self._schedule_end = None
                await asyncio.sleep(IDLE_POLL_WALL_SECONDS)
                continue
            self._schedule_end = step_end
            # always yield, even when catching up, so handlers write each step's tokens as
            # their own chunk instead of finding several piled up
            await asyncio.sleep(max(0.0, self.clock.wall_seconds_until(step_end)))
            self._apply(outcome, step_start, step_end)

    def _apply(self, outcome: StepOutcome, step_start: float, step_end: float) -> None:
        for request_id in outcome.scheduled_ids:
            scheduled = self.streams.get(request_id)
            if scheduled is not None and scheduled.first_scheduled_model_time is None:
                scheduled.first_scheduled_model_time = step_start
        produced = set(outcome.first_token_ids)
        produced.update(outcome.token_ids)
        for request_id in produced:
            stream = self.streams.get(request_id)
            if stream is not None:
                self._deliver(stream, step_start, step_end)
        if outcome.preempted_ids:
            self.metrics.preemptions.inc(len(outcome.preempted_ids))
            for request_id in outcome.preempted_ids:
                if request_id in self.streams:
                    self.streams[request_id].preemptions += 1
        self.metrics.record_step(outcome.batch_tokens)
        for request_id in outcome.finished_ids:
            stream = self.streams.get(request_id)
            if stream is not None:
                # a request generates exactly its planned tokens, then ends as planned
                self._finish(stream, stream.finish_reason, step_end)
        self._publish_scheduler_state()
        self._update_throughput()

    def _update_throughput(self) -> None:
        # the legacy average-throughput gauges: tokens per second over ~5 s of model time,
        # as the v0 engine logged them
        now = self.clock.now()
        elapsed = now - self._throughput_since
        if elapsed < 5.0:
            return
        self.metrics.set_throughput(
            prompt_tokens_per_second=self._prompt_tokens_since / elapsed,
            generation_tokens_per_second=self._generation_tokens_since / elapsed,
        )
        self._prompt_tokens_since = 0
        self._generation_tokens_since = 0
        self._throughput_since = now

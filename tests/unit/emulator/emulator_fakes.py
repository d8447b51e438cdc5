"""A deterministic step engine and a running-emulator fixture for the emulator's tests.

The fake engine has round numbers (decode step = 10 ms + 1 ms per running request, prefill =
20 ms per admitted request, 4 batch slots) so timing assertions can be exact up to the
tolerance each test states. Tests of agreement with the real performance model use
llmscale.sim's engine instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from llmscale_tools.emulator.app import EngineSpec, RunningEmulator, start_emulator
from llmscale_tools.emulator.config import EmulatorConfig

DECODE_BASE_SECONDS = 0.010
DECODE_PER_REQUEST_SECONDS = 0.001
PREFILL_SECONDS = 0.020
BATCH_SLOTS = 4
T = TypeVar("T")


@dataclass(frozen=True)
class FakeStep:
    duration_seconds: float
    first_token_ids: list[str]
    token_ids: list[str]
    finished_ids: list[str]
    preempted_ids: list[str] = field(default_factory=list)
    scheduled_ids: list[str] = field(default_factory=list)
    batch_tokens: int = 0


class FakeEngine:
    def __init__(self, slots: int = BATCH_SLOTS) -> None:
        self.slots = slots
        self.waiting: list[tuple[str, int]] = []
        self.running: dict[str, int] = {}  # id -> tokens still to generate
        self.added_at: dict[str, float] = {}
        self.cancelled: list[str] = []

    def add_request(self, request_id: str, prompt_tokens: int, max_output_tokens: int, now: float) -> None:
        self.waiting.append((request_id, max_output_tokens))
        self.added_at[request_id] = now

    def cancel(self, request_id: str) -> None:
        self.cancelled.append(request_id)
        self.running.pop(request_id, None)
        self.waiting = [w for w in self.waiting if w[0] != request_id]

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def kv_cache_usage(self) -> float:
        return len(self.running) / self.slots

    def step(self, now: float) -> FakeStep:
        decoding = list(self.running)
        admitted: list[str] = []
        while self.waiting and len(self.running) < self.slots:
            request_id, max_tokens = self.waiting.pop(0)
            self.running[request_id] = max_tokens
            admitted.append(request_id)
        duration = PREFILL_SECONDS * len(admitted)
        if decoding:
            duration += DECODE_BASE_SECONDS + DECODE_PER_REQUEST_SECONDS * len(decoding)
        finished = []
        for request_id in [*admitted, *decoding]:
            self.running[request_id] -= 1
            if self.running[request_id] == 0:
                del self.running[request_id]
                finished.append(request_id)
        return FakeStep(
            duration, admitted, decoding, finished, [], [*admitted, *decoding], len(admitted) + len(decoding)
        )


def fake_factory(engine: FakeEngine, max_model_len: int = 4096) -> Callable[[EmulatorConfig], EngineSpec]:
    return lambda _config: EngineSpec(engine, max_model_len, 65536)


def run_with_emulator(
    scenario: Callable[[RunningEmulator], Awaitable[T]],
    engine: FakeEngine | None = None,
    **config: Any,
) -> T:
    """Start an emulator on 127.0.0.1 (free port) with the fake engine, run the scenario, stop."""

    async def main() -> T:
        settings: dict[str, Any] = {"model": "test/model", "served_model_names": ("fake",), "port": 0}
        settings.update(config)
        running = await start_emulator(EmulatorConfig(**settings), fake_factory(engine or FakeEngine()))
        try:
            return await scenario(running)
        finally:
            await running.drain_and_stop(timeout_seconds=1.0)

    return asyncio.run(main())

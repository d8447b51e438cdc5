"""The fleet simulator's fast formulation of one replica (same parameters as the engine).

Instead of simulating every engine step, a replica advances in coarse time steps (`dt`,
1 s by default) and keeps, per request, only what decides its latency:

* **Token clock.** All running sequences of a replica advance one token per engine step, so
  one number `clock` (tokens emitted per running sequence so far) replaces per-sequence
  counters. A request admitted at clock c with O output tokens finishes at clock c + O - 1;
  a heap of finish clocks yields completions in order.
* **Steps per interval.** The decode step time comes from `decode_step_seconds(batch,
  context)`; prompt work (chunked prefill) takes its share of the interval first, so decoding
  slows down while prompts arrive, as in the engine.
* **Prefill pipeline.** Prompts are processed FIFO: a request's first token comes when the
  prompts before it are done plus its own prefill cost plus one step of the running batch.
  Its decoding starts only then: until its first token a request holds a sequence slot and its
  KV reservation but is not in the decode batch (it neither slows the decode steps nor
  advances towards its end), so no request can finish before its first token.
* **Admission.** Like vLLM: at most max_num_seqs running, FIFO waiting queue. KV is reserved
  for prompt + output at admission (no preemption in this formulation; the engine does
  preempt, which only matters when the cache is nearly full).
"""

from __future__ import annotations

import heapq
from collections import deque

from llmscale.sim.perfmodel import ReplicaPerformanceModel

STARTING, READY, DRAINING = 0, 1, 2


class SimReplica:
    __slots__ = (
        "_budget_prefill_seconds",
        "_context_seconds_per_token",
        "_fixed_step_seconds",
        "_kv_cache_tokens",
        "_max_num_seqs",
        "_sequence_seconds",
        "admitted_tokens",
        "batch_context_offset",
        "clock",
        "created_seconds",
        "decoding",
        "finishes",
        "kv_reserved",
        "last_step_seconds",
        "model",
        "pending",
        "prefill_busy_until",
        "prefill_starts",
        "prefill_work_seconds",
        "ready_seconds",
        "running",
        "state",
        "waiting",
    )

    def __init__(self, model: ReplicaPerformanceModel, created_seconds: float, ready_seconds: float) -> None:
        self.model = model
        # Step-cost parameters as plain floats: admit() runs once per request.
        self._fixed_step_seconds = model.fixed_step_seconds
        self._sequence_seconds = model.decode_seconds_per_sequence
        self._context_seconds_per_token = model.kv_read_seconds_per_context_token
        self._max_num_seqs = model.max_num_seqs
        self._kv_cache_tokens = model.kv_cache_tokens
        self._budget_prefill_seconds = model.prefill_compute_seconds(model.max_num_batched_tokens)
        self.last_step_seconds = model.fixed_step_seconds
        self.created_seconds = created_seconds
        self.ready_seconds = ready_seconds
        self.state = STARTING
        self.clock = 0.0
        # (finish clock, request, kv tokens, prompt, clock when its decoding started)
        self.finishes: list[tuple[float, int, int, int, float]] = []
        # Admitted, prompt not yet done: (first-token time, request, kv tokens, prompt, output).
        self.pending: list[tuple[float, int, int, int, int]] = []
        self.running = 0  # admitted sequences (in prefill or decoding): vLLM's running + waiting-for-prefill
        self.decoding = 0  # sequences in the decode batch (their first token is out)
        self.kv_reserved = 0
        # context tokens = batch_context_offset + decoding * clock (prompt - join clock, summed)
        self.batch_context_offset = 0.0
        self.waiting: deque[int] = deque()
        self.prefill_busy_until = 0.0
        self.prefill_work_seconds = 0.0  # prompt work admitted but not yet done
        self.prefill_starts: deque[float] = deque()  # admitted, prompt not started: vLLM "waiting"
        self.admitted_tokens = 0

    @property
    def outstanding(self) -> int:
        return self.running + len(self.waiting)

    @property
    def context_tokens(self) -> float:
        return self.batch_context_offset + self.decoding * self.clock

    def decode_step_seconds(self) -> float:
        context = self.batch_context_offset + self.decoding * self.clock
        return (
            self._fixed_step_seconds
            + self.decoding * self._sequence_seconds
            + (context if context > 0 else 0.0) * self._context_seconds_per_token
        )

    def can_admit(self, kv_tokens: int) -> bool:
        return self.running < self._max_num_seqs and self.kv_reserved + kv_tokens <= self._kv_cache_tokens

    def admit(
        self, request: int, now: float, prompt: int, output: int, prefill: float
    ) -> tuple[float, float]:
        """Start a request at `now` whose prompt costs `prefill` seconds
        (`prefill_compute_seconds(prompt)`); returns (first-token time, inter-token latency)."""
        running = self.decoding
        context = self.batch_context_offset + running * self.clock
        step = (
            self._fixed_step_seconds
            + running * self._sequence_seconds
            + (context if context > 0 else 0.0) * self._context_seconds_per_token
        )
        # Prompts share engine steps with the running decodes: every token budget of prompt
        # work comes with one decode step, so the prompt pipeline moves that much slower.
        pipeline = prefill * (1.0 + step / self._budget_prefill_seconds) if running else prefill
        busy = self.prefill_busy_until
        start = now if now > busy else busy
        self.prefill_busy_until = start + pipeline
        self.prefill_work_seconds += prefill
        if start > now:
            self.prefill_starts.append(start)
        kv_tokens = prompt + output
        self.running += 1
        self.kv_reserved += kv_tokens
        self.admitted_tokens += prompt
        # A new request also waits for the engine step in flight (half a step on average);
        # behind a prompt backlog, its last chunk shares a step with the prompts after it, and
        # the whole step ends before its first token (half a token budget on average).
        wait = 0.5 * step if running else 0.0
        if start > now:
            ahead = start - now
            wait += 0.5 * (ahead if ahead < self._budget_prefill_seconds else self._budget_prefill_seconds)
        first = start + wait + pipeline + step
        heapq.heappush(self.pending, (first, request, kv_tokens, prompt, output))
        return first, step

    def waiting_for_prefill(self, now: float) -> int:
        """Admitted requests whose prompt has not started (vLLM still counts them waiting)."""
        starts = self.prefill_starts
        while starts and starts[0] <= now:
            starts.popleft()
        return len(starts)

    def advance(self, start: float, dt: float, finished: list[float]) -> float:
        """Run decoding over [start, start + dt); appends each finish time to `finished`.

        A request whose first token comes inside the interval joins the decode batch at that
        moment (at the token clock it finds then) and finishes output - 1 tokens later. Returns
        the generation tokens produced (for the counter); `last_step_seconds` is the decode step
        time of the interval (vLLM observes inter-token latency per token)."""
        end = start + dt
        pending = self.pending
        joining = bool(pending) and pending[0][0] < end
        prefill_time = self.prefill_work_seconds if self.prefill_work_seconds < dt else dt
        self.prefill_work_seconds -= prefill_time
        if self.decoding == 0 and not joining:
            return 0.0
        decoding = self.decoding
        context = self.batch_context_offset + decoding * self.clock
        step = (
            self._fixed_step_seconds
            + decoding * self._sequence_seconds
            + (context if context > 0 else 0.0) * self._context_seconds_per_token
        )
        self.last_step_seconds = step
        # Chunked prefill never starves decoding: each step carries at most one token budget.
        steps = (dt - prefill_time) / step
        floor = dt / (step + self._budget_prefill_seconds)
        if steps < floor:
            steps = floor
        old_clock = self.clock
        clock = old_clock + steps
        produced = steps * self.decoding
        finishes = self.finishes
        push = heapq.heappush
        while pending and pending[0][0] < end:
            first, request, kv_tokens, prompt, output = heapq.heappop(pending)
            offset = (first - start) / dt
            join = old_clock + steps * (offset if offset > 0 else 0.0)
            push(finishes, (join + output - 1, request, kv_tokens, prompt, join))
            self.decoding += 1
            self.batch_context_offset += prompt - join
            remaining = clock - join
            produced += 1.0 + (remaining if remaining < output - 1 else output - 1)
        self.clock = clock
        pop = heapq.heappop
        while finishes and finishes[0][0] <= clock:
            finish_clock, _request, kv_tokens, prompt, join = pop(finishes)
            fraction = (finish_clock - old_clock) / steps
            finished.append(start + dt * (fraction if fraction > 0 else 0.0))
            self.running -= 1
            self.decoding -= 1
            self.kv_reserved -= kv_tokens
            self.batch_context_offset -= prompt - join
        if self.decoding == 0:
            self.batch_context_offset = 0.0
        return produced

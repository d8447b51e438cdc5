"""A step-level continuous-batching engine that behaves like vLLM's scheduler (V1).

Scheduling policy (what vLLM V1 does by default, and what this engine documents):

* **Chunked prefill.** Each step has a token budget (`max_num_batched_tokens`). Running
  sequences come first: each decoding sequence takes one token, a sequence part-way through
  its prompt takes the next chunk. What is left of the budget admits waiting requests in
  FIFO order, as long as fewer than `max_num_seqs` run and their KV blocks fit.
* **Paged KV cache.** Blocks of `block_size_tokens` are allocated as a sequence grows.
  When a running sequence needs a block and none is free, the most recently admitted
  running sequence is **preempted** (recompute mode: its blocks are freed and it goes back to
  the front of the waiting queue; when rescheduled it prefills prompt + generated tokens again).
* The step's duration comes from `ReplicaPerformanceModel.mixed_step_seconds`, the same
  parameters the fleet simulator uses.

The engine never reads a clock: the caller passes `now` and advances time by the returned
`duration_seconds` (the emulator sleeps it, the offline replay adds it).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from llmscale.errors import UserInputError
from llmscale.sim.perfmodel import ReplicaPerformanceModel


@dataclass(frozen=True)
class StepResult:
    duration_seconds: float  # 0.0 when there was nothing to run
    first_token_ids: tuple[str, ...]  # requests whose first output token this step produced
    token_ids: tuple[str, ...]  # every request that produced a token (includes first_token_ids)
    finished_ids: tuple[str, ...]  # requests that produced their last token
    preempted_ids: tuple[str, ...]  # requests sent back to the waiting queue
    # every request that computed tokens this step (decode or a prefill chunk): the step a
    # request is first scheduled in ends its queue time and starts its prefill, as in vLLM
    scheduled_ids: tuple[str, ...] = ()
    batch_tokens: int = 0  # tokens computed this step: every prefill chunk plus one per decode


@dataclass(eq=False)  # identity semantics: list.remove / `in` must not compare fields
class _Sequence:
    request_id: str
    prompt_tokens: int
    max_output_tokens: int
    arrival_seconds: float
    generated_tokens: int = 0
    computed_tokens: int = 0  # tokens whose KV is in the cache
    blocks: int = 0
    preemptions: int = 0
    first_token_seconds: float | None = None

    @property
    def target_context_tokens(self) -> int:
        # Tokens that must be in the cache before the next output token can be sampled.
        return self.prompt_tokens + self.generated_tokens

    @property
    def pending_tokens(self) -> int:
        return self.target_context_tokens - self.computed_tokens

    @property
    def prefilling(self) -> bool:
        # Decoding = exactly the last sampled token still to compute. A fresh prompt, or one
        # being recomputed after preemption, is prefilling.
        return self.generated_tokens == 0 or self.pending_tokens > 1


@dataclass
class _Plan:
    decode: list[_Sequence] = field(default_factory=list)
    chunks: list[tuple[_Sequence, int]] = field(default_factory=list)
    preempted: list[_Sequence] = field(default_factory=list)


class ContinuousBatchingEngine:
    """One vLLM replica, step by step."""

    def __init__(self, model: ReplicaPerformanceModel) -> None:
        self.model = model
        self.total_blocks = max(1, model.kv_cache_tokens // model.block_size_tokens)
        self._free_blocks = self.total_blocks
        self._waiting: deque[_Sequence] = deque()
        self._running: list[_Sequence] = []
        self._by_id: dict[str, _Sequence] = {}
        self.num_preemptions_total = 0

    # ---- requests -------------------------------------------------------------------------

    def add_request(self, request_id: str, prompt_tokens: int, max_output_tokens: int, now: float) -> None:
        if request_id in self._by_id:
            raise UserInputError(f"request_id: value {request_id!r} is already in the engine")
        if prompt_tokens < 1 or max_output_tokens < 1:
            raise UserInputError(
                f"request {request_id!r}: prompt_tokens {prompt_tokens} and max_output_tokens "
                f"{max_output_tokens} must both be >= 1"
            )
        if prompt_tokens + max_output_tokens > self.model.kv_cache_tokens:
            raise UserInputError(
                f"request {request_id!r}: {prompt_tokens + max_output_tokens} tokens exceed the KV cache "
                f"({self.model.kv_cache_tokens} tokens)"
            )
        sequence = _Sequence(request_id, prompt_tokens, max_output_tokens, now)
        self._by_id[request_id] = sequence
        self._waiting.append(sequence)

    def cancel(self, request_id: str) -> None:
        """Drop a request (client went away); unknown or finished ids are ignored."""
        sequence = self._by_id.pop(request_id, None)
        if sequence is None:
            return
        self._release(sequence)
        if sequence in self._running:
            self._running.remove(sequence)
        else:
            self._waiting.remove(sequence)

    # ---- gauges (what vLLM exports) ------------------------------------------------------

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def kv_cache_usage(self) -> float:
        return 1.0 - self._free_blocks / self.total_blocks

    @property
    def idle(self) -> bool:
        return not self._running and not self._waiting

    def first_token_seconds(self, request_id: str) -> float | None:
        sequence = self._by_id.get(request_id)
        return sequence.first_token_seconds if sequence else None

    # ---- one step -------------------------------------------------------------------------

    def step(self, now: float) -> StepResult:
        plan = self._schedule()
        if not plan.decode and not plan.chunks:
            return StepResult(0.0, (), (), (), tuple(s.request_id for s in plan.preempted))
        context_tokens = sum(s.computed_tokens for s in plan.decode)
        prefill_tokens = sum(chunk for _, chunk in plan.chunks)
        pairs = sum(chunk * (s.computed_tokens + (chunk + 1) / 2.0) for s, chunk in plan.chunks)
        duration = self.model.mixed_step_seconds(len(plan.decode), context_tokens, prefill_tokens, pairs)
        end = now + duration

        emitted: list[_Sequence] = list(plan.decode)
        for sequence in plan.decode:
            sequence.computed_tokens += 1
        for sequence, chunk in plan.chunks:
            sequence.computed_tokens += chunk
            if sequence.pending_tokens == 0:
                emitted.append(sequence)  # the prompt's last chunk samples a token
        first: list[str] = []
        finished: list[str] = []
        for sequence in emitted:
            sequence.generated_tokens += 1
            if sequence.first_token_seconds is None:
                sequence.first_token_seconds = end
                first.append(sequence.request_id)
            if sequence.generated_tokens >= sequence.max_output_tokens:
                finished.append(sequence.request_id)
                self._release(sequence)
                self._running.remove(sequence)
                del self._by_id[sequence.request_id]
        return StepResult(
            duration,
            tuple(first),
            tuple(s.request_id for s in emitted),
            tuple(finished),
            tuple(s.request_id for s in plan.preempted),
            tuple(s.request_id for s in plan.decode) + tuple(s.request_id for s, _ in plan.chunks),
            len(plan.decode) + prefill_tokens,
        )

    # ---- scheduling -----------------------------------------------------------------------

    def _blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.model.block_size_tokens)

    def _grow(self, sequence: _Sequence, tokens: int) -> bool:
        needed = self._blocks_for(tokens) - sequence.blocks
        if needed <= 0:
            return True
        if needed > self._free_blocks:
            return False
        self._free_blocks -= needed
        sequence.blocks += needed
        return True

    def _release(self, sequence: _Sequence) -> None:
        self._free_blocks += sequence.blocks
        sequence.blocks = 0

    def _preempt_last(self, plan: _Plan) -> _Sequence:
        victim = self._running.pop()
        self._release(victim)
        victim.computed_tokens = 0  # recompute mode
        victim.preemptions += 1
        self.num_preemptions_total += 1
        self._waiting.appendleft(victim)
        plan.preempted.append(victim)
        return victim

    def _schedule(self) -> _Plan:
        plan = _Plan()
        budget = self.model.max_num_batched_tokens
        index = 0
        while index < len(self._running) and budget > 0:
            sequence = self._running[index]
            chunk = min(budget, sequence.pending_tokens) if sequence.prefilling else 1
            preempted_itself = False
            while not self._grow(sequence, sequence.computed_tokens + chunk):
                if self._preempt_last(plan) is sequence:
                    preempted_itself = True
                    break
            if preempted_itself:
                break  # nothing after it is running either
            if sequence.prefilling:
                plan.chunks.append((sequence, chunk))
            else:
                plan.decode.append(sequence)
            budget -= chunk
            index += 1
        if plan.preempted:
            return plan  # vLLM admits nothing new in a step that had to preempt
        while self._waiting and budget > 0 and len(self._running) < self.model.max_num_seqs:
            sequence = self._waiting[0]
            chunk = min(budget, sequence.pending_tokens)
            if not self._grow(sequence, sequence.computed_tokens + chunk):
                break  # FIFO: the head waits for KV blocks, nobody overtakes it
            self._waiting.popleft()
            self._running.append(sequence)
            plan.chunks.append((sequence, chunk))
            budget -= chunk
        return plan

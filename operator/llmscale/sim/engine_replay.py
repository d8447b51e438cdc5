"""Replay arrivals through one `ContinuousBatchingEngine` in simulated time (no clock).

The slow, exact reference: tests compare the fleet simulator's fast formulation with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from llmscale.sim.engine import ContinuousBatchingEngine
from llmscale.sim.perfmodel import ReplicaPerformanceModel


@dataclass(frozen=True)
class EngineReplay:
    ttft_seconds: npt.NDArray[np.float64]  # per request, in arrival order
    finish_seconds: npt.NDArray[np.float64]
    preemptions: int

    @property
    def completed_requests_per_second(self) -> float:
        span = float(self.finish_seconds.max() - self.finish_seconds.min())
        return (len(self.finish_seconds) - 1) / span if span > 0 else 0.0


def replay_on_engine(
    model: ReplicaPerformanceModel,
    arrival_seconds: npt.NDArray[np.float64],
    input_tokens: npt.NDArray[np.int64],
    output_tokens: npt.NDArray[np.int64],
) -> EngineReplay:
    engine = ContinuousBatchingEngine(model)
    count = len(arrival_seconds)
    ttft = np.full(count, np.nan)
    finish = np.full(count, np.nan)
    now = float(arrival_seconds[0]) if count else 0.0
    next_index = 0
    done = 0
    while done < count:
        while next_index < count and arrival_seconds[next_index] <= now:
            engine.add_request(
                str(next_index), int(input_tokens[next_index]), int(output_tokens[next_index]),
                float(arrival_seconds[next_index]),
            )  # fmt: skip
            next_index += 1
        if engine.idle:
            now = float(arrival_seconds[next_index])
            continue
        result = engine.step(now)
        now += result.duration_seconds
        for request_id in result.first_token_ids:
            index = int(request_id)
            ttft[index] = now - arrival_seconds[index]
        for request_id in result.finished_ids:
            finish[int(request_id)] = now
        done += len(result.finished_ids)
    return EngineReplay(ttft, finish, engine.num_preemptions_total)

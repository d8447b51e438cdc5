"""The oracle: the cheapest fleet schedule that meets the SLO objective, knowing the future.

It is a bound for the causal policies, so it plays by their rules: the same equal start, the
same replica model, the same cold starts (each replica started one worst-case cold start ahead
of the window that needs it) and the same gateway. What it may use that they may not is the
trace itself: every request's arrival time and lengths.

Method (per-window minimum replicas by a one-parameter search):

1. Each request costs w_i replica-seconds: its prefill compute plus its decode steps' share of
   a saturated batch, from the replica model at its own lengths.
2. For a window of `window_seconds` (10 s) the fleet needs
   n_w(u) = ceil(max(W_w / window, B_w / burst) / u) Ready replicas, where W_w is the work
   arriving in the window, B_w the largest work arriving in any 1-s slice of it, `burst` the
   TTFT target (a burst must be worked off within it) and u a packing factor; n_w >= 1 when
   anything arrives. A window without arrivals needs 0 (in-flight requests drain).
3. Each need is provisioned one lead earlier (lead = cold start x (1 + jitter) + one tick): the
   desired count at window w is the largest need of the windows up to one lead ahead. A
   replica is thus kept through any gap shorter than a cold start, where stopping and starting
   again would cost more and arrive late.
4. The search: attainment falls as u grows (fewer replicas), so a bisection on log u finds the
   largest u, the cheapest schedule, whose simulated attainment meets the target = the SLO
   objective, or, when no schedule can (a burst in the first cold start), the best attainment
   the densest schedule (u = U_MIN) reaches. It aims at the target, not beyond it.

It is not a proof of optimality (per-window counts come from one factor, not one search per
window); tests/unit/sim/test_sim_oracle_bound.py checks that no policy of the suite beats it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from llmscale.sim.fleet import FleetConfig, simulate
from llmscale.sim.policy import FleetObservation, SimContext
from llmscale.sim.results import PolicyResult
from llmscale.sim.traces import Trace

WINDOW_SECONDS = 10.0
TICK_SECONDS = 5.0
U_MIN, U_MAX = 0.08, 4.0
SEARCH_STEPS = 9


def request_work_seconds(config: FleetConfig, trace: Trace) -> npt.NDArray[np.float64]:
    """Replica-seconds each request takes from a saturated replica (prefill + its decode share)."""
    model = config.model
    prompt = np.maximum(trace.input_tokens, 1).astype(np.float64)
    output = np.maximum(trace.output_tokens, 1).astype(np.float64)
    prefill = (
        prompt * model.prefill_seconds_per_token
        + prompt * (prompt + 1) / 2.0 * model.prefill_attention_seconds_per_token_pair
    )
    batch = model.saturated_batch_size(float(prompt.mean()), float(output.mean())) if len(trace) else 1
    context = prompt + output / 2.0
    per_token = (
        model.fixed_step_seconds / batch
        + model.decode_seconds_per_sequence
        + context * model.kv_read_seconds_per_context_token
    )
    work: npt.NDArray[np.float64] = prefill + (output - 1.0) * per_token
    return work


@dataclass(frozen=True)
class WorkProfile:
    sustained: npt.NDArray[np.float64]  # replicas of work per window (work / window)
    burst: npt.NDArray[np.float64]  # replicas to absorb the largest 1-s slice within the TTFT target
    busy: npt.NDArray[np.bool_]  # windows with any arrival


def work_profile(config: FleetConfig, trace: Trace, window: float = WINDOW_SECONDS) -> WorkProfile:
    work = request_work_seconds(config, trace)
    windows = max(1, math.ceil((trace.duration_seconds + 1e-9) / window))
    index = np.minimum((trace.arrival_seconds // window).astype(np.int64), windows - 1)
    sustained = np.bincount(index, weights=work, minlength=windows)[:windows] / window
    seconds = (trace.arrival_seconds // 1.0).astype(np.int64)
    per_second = np.bincount(seconds, weights=work)
    second_window = np.minimum((np.arange(len(per_second)) // int(window)), windows - 1)
    burst = np.zeros(windows)
    np.maximum.at(burst, second_window, per_second)
    burst /= max(1.0, config.slo_ttft_p95_seconds)
    busy = np.bincount(index, minlength=windows)[:windows] > 0
    return WorkProfile(sustained, burst, busy)


def schedule(profile: WorkProfile, packing: float, lead_windows: int) -> npt.NDArray[np.int64]:
    """Desired replicas per window: need at packing `packing`, provisioned `lead_windows` ahead."""
    need = np.ceil(np.maximum(profile.sustained, profile.burst) / packing - 1e-9).astype(np.int64)
    need[profile.busy] = np.maximum(need[profile.busy], 1)
    desired = need.copy()
    for shift in range(1, lead_windows + 1):
        desired[:-shift] = np.maximum(desired[:-shift], need[shift:])
    return desired


@dataclass
class ScheduledPolicy:
    """Plays a precomputed per-window schedule (the oracle's output)."""

    desired: npt.NDArray[np.int64]
    window_seconds: float = WINDOW_SECONDS
    name: str = "oracle"
    tick_seconds: float = TICK_SECONDS
    packing: float = field(default=1.0)
    reads_latency_quantiles: bool = False

    def prepare(self, context: SimContext) -> None:
        return None

    def decide(self, observation: FleetObservation) -> int:
        index = int(observation.now // self.window_seconds)
        return int(self.desired[index]) if index < len(self.desired) else 0


def attempt(
    trace: Trace, config: FleetConfig, packing: float, profile: WorkProfile | None = None
) -> PolicyResult:
    """The schedule at one packing factor, simulated."""
    profile = profile or work_profile(config, trace)
    lead = config.effective_cold_start_seconds * (1.0 + config.cold_start_jitter) + TICK_SECONDS
    policy = ScheduledPolicy(schedule(profile, packing, math.ceil(lead / WINDOW_SECONDS)), packing=packing)
    return replace(simulate(trace, policy, config), name="oracle", parameters={"packing": round(packing, 4)})


def run_oracle(trace: Trace, config: FleetConfig, objective: float | None = None) -> PolicyResult:
    """The cheapest searched schedule meeting `objective` (default: the config's SLO objective)."""
    target = config.slo_objective if objective is None else objective
    profile = work_profile(config, trace)

    densest = attempt(trace, config, U_MIN, profile)
    goal = min(target, densest.slo_attainment)
    best = densest
    low, high = math.log(U_MIN), math.log(U_MAX)
    for _ in range(SEARCH_STEPS):
        middle = (low + high) / 2.0
        result = attempt(trace, config, math.exp(middle), profile)
        if result.slo_attainment >= goal:
            low = middle
            if result.gpu_hours < best.gpu_hours:
                best = result
        else:
            high = middle
    return best

"""Strategy `Auto`: an ordered chain of small named rules, cert-manager style.

Each rule looks at a `StrategyContext` and returns a `RuleResult` (strategy, reason, message) or
None. The first rule that fires decides; its reason and message go verbatim into status and
Events. A fixed strategy (`spec.scaling.strategy` other than Auto) short-circuits the chain.

Rules, in order:

1. `UserSelected`      strategy is not Auto -> that strategy.
2. `LearningDemand`    less than `min_history_seconds` observed -> Autoscaled (follows load, never
                       zero: the safe choice while nothing is known).
3. `IdleFitsErrorBudget`  minReplicas is 0, idle periods longer than the cold start cover at least
                       `MIN_IDLE_SHARE` of the time and save at least `MIN_SAVING_USD_PER_HOUR`, and
                       the requests expected to meet a cold start (wake-ups per hour x requests in
                       the first cold start after each) fit in `COLD_START_BUDGET_SHARE` of the
                       error budget ((1 - objective) x requests per hour) -> ScaleToZero.
4. `ColdStartExceedsDemandCycle`  the cold start is longer than `WARM_COLD_START_SECONDS`: the
                       fleet cannot follow demand, so provision for the peak -> Warm.
5. `DemandFlat`        after an hour of history, the decaying peak and the current load need the
                       same number of replicas: autoscaling has nothing to save -> Warm.
6. `DemandVaries`      otherwise -> Autoscaled.

Switching towards a riskier strategy (Warm -> Autoscaled -> ScaleToZero) waits for
`strategy_dwell_seconds`; switching towards a safer one happens at once (`StrategyDwell`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmscale.scaling import reasons
from llmscale.scaling.types import ScalingPolicy, Strategy, StrategyState, WorkloadState, parse_strategy
from llmscale.scaling.workload import idle_seconds_now

MIN_IDLE_SHARE = 0.10
"""Scale to zero only when long idle periods cover at least 10 % of the time."""
MIN_SAVING_USD_PER_HOUR = 0.01
COLD_START_BUDGET_SHARE = 0.5
"""Cold starts may spend half the SLO error budget; the rest is for load noise."""
WARM_COLD_START_SECONDS = 1800.0
FLAT_MIN_HISTORY_SECONDS = 3600.0
"""Call demand flat only after an hour of it (a flat five minutes says little)."""

RISK_ORDER = {Strategy.WARM: 0, Strategy.AUTOSCALED: 1, Strategy.SCALE_TO_ZERO: 2}


@dataclass(frozen=True)
class StrategyContext:
    policy: ScalingPolicy
    workload: WorkloadState
    now: float
    cold_start_seconds: float
    load_replicas: float
    sustainable_load_per_replica: float


@dataclass(frozen=True)
class RuleResult:
    strategy: Strategy
    reason: str
    message: str


Rule = Callable[[StrategyContext], RuleResult | None]


@dataclass(frozen=True)
class ZeroEconomics:
    """The numbers behind the scale-to-zero rule (also quoted when it does not fire)."""

    idle_share: float
    wakeups_per_hour: float
    requests_per_wakeup: float
    cold_start_requests_per_hour: float
    budget_requests_per_hour: float
    saving_usd_per_hour: float

    def describe(self, cold_start_seconds: float) -> str:
        return (
            f"idle {self.idle_share:.0%} of the time in gaps > cold start {cold_start_seconds:.0f}s; "
            f"{self.wakeups_per_hour:.1f} wake-ups/h x {self.requests_per_wakeup:.1f} requests = "
            f"{self.cold_start_requests_per_hour:.1f} req/h would meet a cold start; error budget "
            f"share {self.budget_requests_per_hour:.1f} req/h; zero saves "
            f"${self.saving_usd_per_hour:.2f}/h"
        )


def zero_economics(context: StrategyContext) -> ZeroEconomics:
    workload = context.workload
    hours = max(workload.observed_seconds, 1.0) / 3600.0
    open_gap = idle_seconds_now(workload, context.now)
    long_idle = workload.idle_seconds_long + (open_gap if open_gap > context.cold_start_seconds else 0.0)
    idle_share = min(1.0, long_idle / max(workload.observed_seconds, 1.0))
    wakeups_per_hour = workload.wakeups / hours
    requests_per_wakeup = workload.wake_requests / workload.wakeups if workload.wakeups > 1e-6 else 0.0
    requests_per_hour = workload.total_requests / hours
    budget = (1.0 - context.policy.slo_objective) * requests_per_hour * COLD_START_BUDGET_SHARE
    saving = idle_share * context.policy.replica_price_per_hour_usd
    return ZeroEconomics(
        idle_share=idle_share,
        wakeups_per_hour=wakeups_per_hour,
        requests_per_wakeup=requests_per_wakeup,
        cold_start_requests_per_hour=wakeups_per_hour * requests_per_wakeup,
        budget_requests_per_hour=budget,
        saving_usd_per_hour=saving,
    )


def rule_user_selected(context: StrategyContext) -> RuleResult | None:
    chosen = context.policy.strategy
    if chosen is Strategy.AUTO:
        return None
    return RuleResult(chosen, reasons.USER_SELECTED, f"spec.scaling.strategy is {chosen.value}")


def rule_learning_demand(context: StrategyContext) -> RuleResult | None:
    seen = context.workload.observed_seconds
    needed = context.policy.min_history_seconds
    if seen >= needed:
        return None
    return RuleResult(
        Strategy.AUTOSCALED,
        reasons.LEARNING_DEMAND,
        f"{seen:.0f}s of demand observed, {needed:.0f}s needed before Warm or ScaleToZero are considered",
    )


def rule_idle_fits_error_budget(context: StrategyContext) -> RuleResult | None:
    if context.policy.min_replicas > 0:
        return None
    economics = zero_economics(context)
    if economics.idle_share < MIN_IDLE_SHARE or economics.saving_usd_per_hour < MIN_SAVING_USD_PER_HOUR:
        return None
    if economics.cold_start_requests_per_hour > economics.budget_requests_per_hour:
        return None
    return RuleResult(
        Strategy.SCALE_TO_ZERO,
        reasons.IDLE_FITS_ERROR_BUDGET,
        economics.describe(context.cold_start_seconds),
    )


def rule_cold_start_exceeds_demand_cycle(context: StrategyContext) -> RuleResult | None:
    if context.cold_start_seconds <= WARM_COLD_START_SECONDS:
        return None
    return RuleResult(
        Strategy.WARM,
        reasons.COLD_START_EXCEEDS_DEMAND_CYCLE,
        f"cold start {context.cold_start_seconds:.0f}s exceeds {WARM_COLD_START_SECONDS:.0f}s: "
        "replicas cannot follow demand, provisioning for the peak",
    )


def warm_replicas(context: StrategyContext) -> int:
    return max(1, math.ceil(context.workload.peak_load / context.sustainable_load_per_replica - 1e-9))


def rule_demand_flat(context: StrategyContext) -> RuleResult | None:
    if context.workload.observed_seconds < FLAT_MIN_HISTORY_SECONDS:
        return None
    peak_replicas = warm_replicas(context)
    now_replicas = max(1, math.ceil(context.load_replicas / context.sustainable_load_per_replica - 1e-9))
    if peak_replicas > now_replicas:
        return None
    return RuleResult(
        Strategy.WARM,
        reasons.DEMAND_FLAT,
        f"peak load {context.workload.peak_load:.2f} and current load {context.load_replicas:.2f} "
        f"replica-units both need {peak_replicas} replica(s): nothing to save by scaling",
    )


def rule_demand_varies(context: StrategyContext) -> RuleResult | None:
    economics = zero_economics(context)
    why_not_zero = (
        "minReplicas > 0"
        if context.policy.min_replicas > 0
        else economics.describe(context.cold_start_seconds)
    )
    return RuleResult(
        Strategy.AUTOSCALED,
        reasons.DEMAND_VARIES,
        f"peak {context.workload.peak_load:.2f} vs now {context.load_replicas:.2f} replica-units; "
        f"not zero: {why_not_zero}",
    )


AUTO_RULES: Sequence[Rule] = (
    rule_user_selected,
    rule_learning_demand,
    rule_idle_fits_error_budget,
    rule_cold_start_exceeds_demand_cycle,
    rule_demand_flat,
    rule_demand_varies,
)


def evaluate(context: StrategyContext, rules: Sequence[Rule] = AUTO_RULES) -> RuleResult:
    """The first rule that fires decides."""
    for rule in rules:
        result = rule(context)
        if result is not None:
            return result
    return RuleResult(Strategy.AUTOSCALED, reasons.DEMAND_VARIES, "no rule fired")


def choose(context: StrategyContext, state: StrategyState) -> RuleResult:
    """Evaluate the chain and apply the dwell time; updates `state` in place."""
    proposal = evaluate(context)
    current = parse_strategy(state.current)
    if current is None or current is proposal.strategy or proposal.reason == reasons.USER_SELECTED:
        if current is not proposal.strategy:
            state.since = context.now
        _record(state, proposal)
        return proposal
    safer = RISK_ORDER[proposal.strategy] < RISK_ORDER[current]
    dwelled = state.since is not None and context.now - state.since >= context.policy.strategy_dwell_seconds
    if safer or dwelled:
        state.since = context.now
        _record(state, proposal)
        return proposal
    remaining = context.policy.strategy_dwell_seconds - (context.now - (state.since or context.now))
    held = RuleResult(
        current,
        reasons.STRATEGY_DWELL,
        f"keeping {current.value} {remaining:.0f}s more before switching to {proposal.strategy.value} "
        f"({proposal.reason}: {proposal.message})",
    )
    _record(state, held)
    return held


def _record(state: StrategyState, result: RuleResult) -> None:
    state.current = result.strategy.value
    state.reason = result.reason
    state.message = result.message

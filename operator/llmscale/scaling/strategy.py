"""Strategy `Auto`: an ordered chain of small named rules, cert-manager style.

Each rule looks at a `StrategyContext` and returns a `RuleResult` (strategy, reason, message) or
None. The first rule that fires decides; its reason and message go verbatim into status and
Events. A fixed strategy (`spec.scaling.strategy` other than Auto) short-circuits the chain.

Rules, in order:

1. `UserSelected`      strategy is not Auto -> that strategy.
2. `LearningDemand`    less than `min_history_seconds` observed -> Autoscaled (follows load, never
                       zero: the safe choice while nothing is known).
3. `IdleFitsErrorBudget`  minReplicas is 0, the idle-gap histogram is representative and yields a
                       finite keep-alive (`keepalive.plan`: the shortest window whose cold-start
                       misses fit half the error budget), and releasing the replica after it saves
                       at least `MIN_SAVING_SHARE` of a replica's price per hour (idle time beyond
                       keep-alive + one cold start, from the histogram) -> ScaleToZero.
4. `ColdStartExceedsDemandCycle`  the cold start is longer than `WARM_COLD_START_SECONDS`: the
                       fleet cannot follow demand, so provision for the peak -> Warm.
5. `ColdStartsNotAbsorbed`  bursts follow idle gaps longer than a cold start (median gap), and the
                       keep-alive that fits the error budget covers the median gap anyway (each
                       burst's first cold start would spend more than the budget affords) -> Warm:
                       capacity for the peak stays through the gaps.
6. `DemandFlat`        after an hour of history, the decaying peak and the current load need the
                       same number of replicas: autoscaling has nothing to save -> Warm.
7. `DemandVaries`      otherwise -> Autoscaled.

Switching towards a riskier strategy (Warm -> Autoscaled -> ScaleToZero) waits for
`strategy_dwell_seconds`; switching towards a safer one happens at once (`StrategyDwell`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmscale.scaling import keepalive, reasons
from llmscale.scaling.types import ScalingPolicy, Strategy, StrategyState, WorkloadState, parse_strategy

MIN_IDLE_SHARE = 0.10
"""(Reported) share of time in idle periods longer than the cold start."""
MIN_SAVING_SHARE = 0.05
"""Scale to zero only when it saves at least 5 % of one replica's price per hour: below that the
operational risk of cold starts is not worth the money."""
COLD_START_BUDGET_SHARE = keepalive.COLD_START_BUDGET_SHARE
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
    keep_alive: keepalive.KeepAlive | None = None


@dataclass(frozen=True)
class RuleResult:
    strategy: Strategy
    reason: str
    message: str


Rule = Callable[[StrategyContext], RuleResult | None]


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


def zero_saving_share(context: StrategyContext, keep: keepalive.KeepAlive) -> float:
    return keepalive.saving_share(context.workload, keep, context.cold_start_seconds)


def rule_idle_fits_error_budget(context: StrategyContext) -> RuleResult | None:
    keep = context.keep_alive
    if context.policy.min_replicas > 0 or keep is None or not keep.representative:
        return None
    if not math.isfinite(keep.keep_alive_seconds):
        return None
    share = zero_saving_share(context, keep)
    if share < MIN_SAVING_SHARE or context.policy.replica_price_per_hour_usd <= 0:
        return None
    saving = share * context.policy.replica_price_per_hour_usd
    return RuleResult(
        Strategy.SCALE_TO_ZERO,
        reasons.IDLE_FITS_ERROR_BUDGET,
        f"{keep.message}; zero saves {share:.0%} of a replica = ${saving:.2f}/h",
    )


def rule_cold_starts_not_absorbed(context: StrategyContext) -> RuleResult | None:
    keep = context.keep_alive
    if keep is None or not keep.representative:
        return None
    median_gap = keepalive.gap_quantile(context.workload, 0.5)
    if median_gap <= context.cold_start_seconds or keep.keep_alive_seconds < median_gap:
        return None
    return RuleResult(
        Strategy.WARM,
        reasons.COLD_STARTS_NOT_ABSORBED,
        f"median idle gap {median_gap:.0f}s > cold start {context.cold_start_seconds:.0f}s and "
        f"{keep.message}: keeping peak capacity through the gaps",
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
    keep = context.keep_alive
    if context.policy.min_replicas > 0:
        why_not_zero = "minReplicas > 0"
    elif keep is None:
        why_not_zero = "no keep-alive plan"
    elif not keep.representative:
        why_not_zero = keep.message
    else:
        share = zero_saving_share(context, keep)
        why_not_zero = (
            f"{keep.message}; zero would save {share:.0%} of a replica (< {MIN_SAVING_SHARE:.0%} or free)"
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
    rule_cold_starts_not_absorbed,
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

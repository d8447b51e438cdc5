"""Demand forecast at the cold-start horizon: candidate models, scored against persistence.

A forecast earns its place only if it beats "load stays as it is" (persistence) at the horizon
that matters: the cold start (a replica requested now serves only then). So the forecaster runs
several small models side by side, issues each one's forecast every decision, scores it when its
outcome arrives (one horizon later), and uses the best of them only while its exponentially
weighted absolute error is at least `SELECT_MARGIN` below persistence's. Otherwise it *is*
persistence and says so (`ForecastPersistence`).

Candidates (`MODEL_NAMES`):

- `persistence`   the latest load sample;
- `holt`          Holt's damped linear trend (time constants `forecast_level_seconds`,
                  `forecast_trend_seconds`; the trend extrapolates at most one time constant);
- `smooth60`, `smooth300`  exponential averages (a Poisson-noisy rate is better predicted by its
                  mean than by its last sample);
- `blend60`, `blend300`  the mean of the latest sample and a smoother (forecast combination: on
                  bursty traffic it beats both of its parts);
- `period300` ... `period3600`  sub-daily recurring patterns (cron-like bursts, hourly batch
                  jobs): a phase profile of `PERIOD_BINS` bins per period, usable once a full
                  period has been seen; forecast = latest sample + profile(then) - profile(now);
- `daily`         the time-of-day profile (96 bins of 15 min by default), usable once a day of
                  evidence exists (seeded from Prometheus history on start, `seed_profile`).

Every model is scored all the time, so a pattern starts to be used as soon as its forecasts have
beaten persistence's for long enough (`MIN_SCORED_SECONDS`), and stops the moment they do not.

Interval: quantiles of the chosen forecast's own errors over the last `RESIDUAL_WINDOW` outcomes
(split conformal prediction on a sliding window), so the nominal 90 % interval covers what it says
on the deployment's own traffic. A sliding window alone under-covers after every change of regime
(its errors describe the calm before), so each tail's level adapts to its own misses: adaptive
conformal inference (Gibbs and Candes, "Adaptive Conformal Inference Under Distribution Shift",
NeurIPS 2021), alpha <- alpha + gamma x (target - missed), with the paper's gamma = 0.005; over
any stretch of outcomes the share that fell beyond a tail then tends to its 5 %. Until
`MIN_RESIDUALS` outcomes are scored the band is point +- 1.645 sigma of one-step upside residuals.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

from llmscale.scaling import reasons
from llmscale.scaling.types import ForecastState, ScalingPolicy

SECONDS_PER_DAY = 86_400.0
PROFILE_MEMORY_DAYS = 3.0
MAX_GAP_FACTOR = 10.0
"""Samples further apart than this many trend time constants restart the Holt model."""
SMOOTH_SECONDS: tuple[float, ...] = (60.0, 300.0)
PERIODS_SECONDS: tuple[float, ...] = (300.0, 600.0, 900.0, 1800.0, 3600.0)
PERIOD_BINS = 30
PERIOD_MEMORY_PERIODS = 3.0
MODEL_NAMES: tuple[str, ...] = (
    "persistence",
    "holt",
    *(f"smooth{round(tau)}" for tau in SMOOTH_SECONDS),
    *(f"blend{round(tau)}" for tau in SMOOTH_SECONDS),
    *(f"period{round(period)}" for period in PERIODS_SECONDS),
    "daily",
)
PERSISTENCE = 0
SEASONAL_FIRST = 2 + 2 * len(SMOOTH_SECONDS)
"""Index of the first seasonal model (the periodic ones, then daily)."""
ERROR_MEMORY_SECONDS = 1800.0
"""Time constant of each model's tracked error: half an hour of outcomes."""
MIN_SCORED_SECONDS = 300.0
"""Outcomes needed before any model may replace persistence."""
SELECT_MARGIN = 0.05
"""A model replaces persistence only with an error at least 5 % lower."""
INTERVAL_LOW, INTERVAL_HIGH = 0.05, 0.95
"""The nominal 90 % interval: each tail's target miss rate is 5 %."""
ADAPT_RATE = 0.005
"""Adaptive conformal inference's step gamma: the value Gibbs and Candes (2021) use in their
experiments. One miss moves a tail's level by 0.00475 (one outcome without a miss by 0.00025);
eleven misses in a row widen it from the 95th percentile to the window's largest error."""
RESIDUAL_WINDOW = 120
"""Errors kept for the interval: ten minutes of outcomes at 5 s decisions."""
MIN_RESIDUALS = 20
"""Below this many scored outcomes the interval is the prior `PRIOR_BAND_Z` x sigma band."""
PRIOR_BAND_Z = 1.645
"""The standard normal's 95th percentile: the prior band is a nominal 90 % interval (the policy's
`forecast_uncertainty_z` is a sizing choice of the scaler, not the interval's)."""


# --- the daily profile -------------------------------------------------------------------------


def _bins(policy: ScalingPolicy) -> int:
    return max(1, round(SECONDS_PER_DAY / policy.profile_bin_seconds))


def _ensure(state: ForecastState, policy: ScalingPolicy) -> None:
    count = _bins(policy)
    if len(state.profile) != count or state.profile_bin_seconds != policy.profile_bin_seconds:
        state.profile = [0.0] * count
        state.profile_weight = [0.0] * count
        state.profile_bin_seconds = policy.profile_bin_seconds
    if len(state.smooth) != len(SMOOTH_SECONDS):
        state.smooth = [state.last_sample] * len(SMOOTH_SECONDS)
    if len(state.periodic) != len(PERIODS_SECONDS) or any(len(row) != PERIOD_BINS for row in state.periodic):
        state.periodic = [[0.0] * PERIOD_BINS for _ in PERIODS_SECONDS]
        state.periodic_weight = [[0.0] * PERIOD_BINS for _ in PERIODS_SECONDS]
    if len(state.model_error) != len(MODEL_NAMES):
        state.model_error = [0.0] * len(MODEL_NAMES)
        state.scored_seconds = 0.0


def _learn_bin(
    values: list[float], weights: list[float], index: int, load: float, weight: float, memory: float
) -> None:
    weights[index] += weight
    # Running mean while the bin is young, then exponential forgetting over `memory` seconds.
    step = max(weight / weights[index], weight / memory)
    values[index] += min(1.0, step) * (load - values[index])


def _learn_profile(state: ForecastState, when: float, load: float, weight_seconds: float) -> None:
    index = int((when % SECONDS_PER_DAY) // state.profile_bin_seconds) % len(state.profile)
    _learn_bin(
        state.profile, state.profile_weight, index, load, weight_seconds,
        state.profile_bin_seconds * PROFILE_MEMORY_DAYS,
    )  # fmt: skip


def _interpolate(values: list[float], weights: list[float], period: float, when: float) -> float | None:
    """Profile value at `when`, linear between bin centres; None where a bin lacks evidence."""
    count = len(values)
    width = period / count
    position = (when % period) / width - 0.5
    lower = math.floor(position)
    fraction = position - lower
    first, second = lower % count, (lower + 1) % count
    if weights[first] < 0.5 * width or weights[second] < 0.5 * width:
        return None
    return values[first] * (1.0 - fraction) + values[second] * fraction


def profile_at(state: ForecastState, when: float) -> float | None:
    """Learned load at time of day `when`; None until the evidence spans a day (before that a bin
    holds only today's recent past, no time-of-day information) or where a bin lacks evidence."""
    if not state.profile or state.first_time is None or state.last_time is None:
        return None
    if state.last_time - state.first_time < SECONDS_PER_DAY:
        return None
    return _interpolate(state.profile, state.profile_weight, SECONDS_PER_DAY, when)


def _periodic_at(state: ForecastState, index: int, when: float) -> float | None:
    period = PERIODS_SECONDS[index]
    if state.first_time is None or state.last_time is None or state.last_time - state.first_time < period:
        return None
    return _interpolate(state.periodic[index], state.periodic_weight[index], period, when)


# --- candidates --------------------------------------------------------------------------------


def _holt(state: ForecastState, policy: ScalingPolicy, horizon: float) -> float:
    tau = policy.forecast_trend_seconds
    effective = tau * (1.0 - math.exp(-max(0.0, horizon) / tau))
    return max(0.0, state.level + state.trend_per_second * effective)


def candidates(state: ForecastState, policy: ScalingPolicy, now: float, horizon: float) -> list[float | None]:
    """Each model's forecast of load at now + horizon (None: the model has no answer yet)."""
    last = state.last_sample
    values: list[float | None] = [
        last,
        _holt(state, policy, horizon),
        *state.smooth,
        *(0.5 * (last + smooth) for smooth in state.smooth),
    ]
    then = now + horizon
    for index in range(len(PERIODS_SECONDS)):
        at_now, at_then = _periodic_at(state, index, now), _periodic_at(state, index, then)
        values.append(None if at_now is None or at_then is None else max(0.0, last + at_then - at_now))
    day_now, day_then = profile_at(state, now), profile_at(state, then)
    values.append(None if day_now is None or day_then is None else max(0.0, last + day_then - day_now))
    return values


def selection(state: ForecastState) -> tuple[int, str]:
    """(model index, reason): the model in use, with hysteresis so the choice does not flip.

    A model replaces persistence (or the model in use) only when its error is at least
    `SELECT_MARGIN` lower; once in use, it stays while its error is no worse than persistence's.
    Without the second half, two models whose errors sit at the margin alternate, and a forecast
    that jumps with them makes the fleet shrink and regrow under a steady periodic load.
    `state.selected` (set by `update`) is the model in use."""
    if len(state.model_error) != len(MODEL_NAMES) or state.scored_seconds < MIN_SCORED_SECONDS:
        return PERSISTENCE, reasons.FORECAST_LEARNING
    errors = state.model_error
    best = min(range(len(errors)), key=lambda index: errors[index])
    current = MODEL_NAMES.index(state.selected) if state.selected in MODEL_NAMES else PERSISTENCE
    if current != PERSISTENCE and errors[current] <= errors[PERSISTENCE]:
        if best != current and errors[best] <= (1.0 - SELECT_MARGIN) * errors[current]:
            return best, reasons.FORECAST_MODEL_SELECTED
        return current, reasons.FORECAST_MODEL_SELECTED
    if best != PERSISTENCE and errors[best] <= (1.0 - SELECT_MARGIN) * errors[PERSISTENCE]:
        return best, reasons.FORECAST_MODEL_SELECTED
    return PERSISTENCE, reasons.FORECAST_PERSISTENCE


# --- update and predict ------------------------------------------------------------------------


def update(
    state: ForecastState, policy: ScalingPolicy, load: float, now: float, horizon_seconds: float | None = None
) -> None:
    """Fold one load sample (replica-units) at `now` into every model, score the forecasts whose
    outcome this is, and issue the next ones for now + `horizon_seconds` (in place)."""
    _ensure(state, policy)
    if state.first_time is None:
        state.first_time = now
    last_time = state.last_time
    if last_time is None or now - last_time > MAX_GAP_FACTOR * policy.forecast_trend_seconds:
        state.level = load
        state.trend_per_second = 0.0
        state.residual_variance = 0.0
        state.smooth = [load] * len(SMOOTH_SECONDS)
        state.pending = []
        dt = policy.decision_interval_seconds
    else:
        dt = now - last_time
        if dt <= 0:
            return
        _holt_step(state, policy, load, dt)
        for index, tau in enumerate(SMOOTH_SECONDS):
            state.smooth[index] += (1.0 - math.exp(-dt / tau)) * (load - state.smooth[index])
    state.last_time = now
    state.last_sample = load
    _learn_profile(state, now, load, dt)
    for index, period in enumerate(PERIODS_SECONDS):
        width = period / PERIOD_BINS
        _learn_bin(
            state.periodic[index], state.periodic_weight[index], int((now % period) // width) % PERIOD_BINS,
            load, dt, width * PERIOD_MEMORY_PERIODS,
        )  # fmt: skip
    _score(state, load, now, policy.decision_interval_seconds)
    state.selected = MODEL_NAMES[selection(state)[0]]
    if horizon_seconds is not None:
        _issue(state, policy, now, horizon_seconds)


def _holt_step(state: ForecastState, policy: ScalingPolicy, load: float, dt: float) -> None:
    alpha = 1.0 - math.exp(-dt / policy.forecast_level_seconds)
    beta = 1.0 - math.exp(-dt / policy.forecast_trend_seconds)
    predicted = max(0.0, state.level + state.trend_per_second * dt)
    residual = load - predicted
    level = predicted + alpha * residual
    state.trend_per_second += beta * ((level - state.level) / dt - state.trend_per_second)
    state.level = level
    # Upside semi-variance (x 2, so symmetric noise gives the plain variance): the prior band
    # until outcomes at the horizon have been scored.
    gamma = 1.0 - math.exp(-dt / policy.stable_window_seconds)
    upside = max(residual, 0.0)
    state.residual_variance += gamma * (2.0 * upside * upside - state.residual_variance)


def _issue(state: ForecastState, policy: ScalingPolicy, now: float, horizon: float) -> None:
    values = candidates(state, policy, now, horizon)
    persistence = state.last_sample
    filled = [persistence if value is None else value for value in values]
    chosen, _ = selection(state)
    low, high = _offsets(state, policy, filled[chosen], horizon)
    state.pending.append([now + horizon, now, filled[chosen], low, high, *filled])


def _score(state: ForecastState, outcome: float, now: float, interval: float) -> None:
    share = 1.0 - math.exp(-interval / ERROR_MEMORY_SECONDS)
    errors = state.model_error
    while state.pending and state.pending[0][0] <= now + 1e-9:
        entry = state.pending.pop(0)
        if len(entry) != PENDING_HEAD + len(MODEL_NAMES):
            continue  # issued by another version of the model set
        for index in range(len(MODEL_NAMES)):
            errors[index] += share * (abs(outcome - entry[PENDING_HEAD + index]) - errors[index])
        state.scored_seconds = state.scored_seconds * (1.0 - share) + interval
        residual = outcome - entry[2]
        _adapt(state, missed_low=residual < entry[3], missed_high=residual > entry[4])
        _track_interval(state, residual)


PENDING_HEAD = 5
"""A pending forecast: target time, issued time, chosen point, its interval's offsets below and
above the point as issued, then every candidate's value."""


def _adapt(state: ForecastState, *, missed_low: bool, missed_high: bool) -> None:
    """Adaptive conformal inference, one step per tail (see the module docstring)."""
    state.interval_alpha_low += ADAPT_RATE * (INTERVAL_LOW - float(missed_low))
    state.interval_alpha_high += ADAPT_RATE * ((1.0 - INTERVAL_HIGH) - float(missed_high))
    # Bounded so that a long storm (or calm) cannot wind a level far beyond what one tail of the
    # window can express: -0.25 is about 63 misses in a row from the target, 0.5 about 1,800
    # outcomes without one; beyond the bounds the level would take as long to come back.
    state.interval_alpha_low = min(0.5, max(-0.25, state.interval_alpha_low))
    state.interval_alpha_high = min(0.5, max(-0.25, state.interval_alpha_high))


def _track_interval(state: ForecastState, residual: float) -> None:
    state.residuals.append(residual)
    if len(state.residuals) > RESIDUAL_WINDOW:
        del state.residuals[0]


def _quantile(ordered: list[float], share: float) -> float:
    """Linear-interpolated quantile of an ascending list (numpy's default method)."""
    position = share * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def predict_interval(
    state: ForecastState, policy: ScalingPolicy, now: float, horizon_seconds: float
) -> tuple[float, float, float, str, str]:
    """(point, lower, upper, model name, reason) for load at now + horizon."""
    if state.last_time is None:
        return 0.0, 0.0, 0.0, MODEL_NAMES[PERSISTENCE], reasons.FORECAST_LEARNING
    _ensure(state, policy)
    chosen, reason = selection(state)
    values = candidates(state, policy, now, horizon_seconds)
    point = values[chosen]
    if point is None:
        chosen, reason, point = PERSISTENCE, reasons.FORECAST_PERSISTENCE, state.last_sample
    low, high = _offsets(state, policy, point, horizon_seconds)
    return point, max(0.0, point + low), point + high, MODEL_NAMES[chosen], reason


def _offsets(
    state: ForecastState,
    policy: ScalingPolicy,
    point: float,
    horizon_seconds: float,
    *,
    adaptive: bool = True,
) -> tuple[float, float]:
    """The interval around `point` as (offset below <= 0, offset above >= 0); `adaptive` False
    gives the plain 5th/95th percentiles of the window."""
    if len(state.residuals) >= MIN_RESIDUALS:
        ordered = sorted(state.residuals)
        low_share, high_share = INTERVAL_LOW, INTERVAL_HIGH
        if adaptive:
            # Each tail at its adapted level (clamped to the window: beyond it, its extreme error).
            low_share = min(1.0, max(0.0, state.interval_alpha_low))
            high_share = min(1.0, max(0.0, 1.0 - state.interval_alpha_high))
        return min(0.0, _quantile(ordered, low_share)), max(0.0, _quantile(ordered, high_share))
    sigma = math.sqrt(max(0.0, state.residual_variance))
    widening = math.sqrt(1.0 + max(0.0, horizon_seconds) / policy.forecast_trend_seconds)
    # The prior band is at most the point itself (KPA's 200 % panic bound): one jump from
    # zero must not size the fleet at several times what arrives.
    band = min(PRIOR_BAND_Z * sigma * widening, point)
    return -band, band


def scaling_upper(state: ForecastState, policy: ScalingPolicy, point: float, horizon_seconds: float) -> float:
    """What the scaler provisions for: point + z x sigma of recent upside surprises (one stable
    window of memory; z = `forecast_uncertainty_z`, 1.0 by default: one-sided 84 %), never beyond
    point + the window's plain 95th-percentile error (split conformal, not the adapted level of
    the reported interval).

    Two choices keep the bill honest. The replica's own headroom (`target_utilization`, the SLO
    headroom) already absorbs much of the forecast's error, so the scaler does not also follow the
    interval's adaptation: on the suite the adapted upper end cost 1-3 % more GPU-hours for no
    attainment (docs/scaling.md, "Forecast"). And the window holds ten minutes of outcomes, so one
    burst's jump sets its 95th percentile for that long; the cap lets a calm stretch release that
    capacity after about a stable window, as the 1<->N scaler does."""
    _, high = _offsets(state, policy, point, horizon_seconds, adaptive=False)
    sigma = math.sqrt(max(0.0, state.residual_variance))
    widening = math.sqrt(1.0 + max(0.0, horizon_seconds) / policy.forecast_trend_seconds)
    return min(point + high, point + policy.forecast_uncertainty_z * sigma * widening)


def predict(
    state: ForecastState, policy: ScalingPolicy, now: float, horizon_seconds: float
) -> tuple[float, float]:
    """(point, upper) load in replica-units expected at now + horizon."""
    point, _, upper, _, _ = predict_interval(state, policy, now, horizon_seconds)
    return point, upper


def seasonal_expectation(
    state: ForecastState, policy: ScalingPolicy, now: float, horizon: float
) -> float | None:
    """The load a learned pattern expects at now + horizon: what pre-warming from zero acts on.

    A *selected* seasonal model (one that beats persistence) answers first. Otherwise the
    time-of-day profile's own value (not its shift from now): waking from zero is a yes/no
    question, "will requests arrive within a cold start?", and a day of evidence that they do at
    this time is an answer even where the profile's 15-minute bins lose to persistence on error.
    None: nothing learned."""
    chosen, _ = selection(state)
    if chosen >= SEASONAL_FIRST:
        return candidates(state, policy, now, horizon)[chosen]
    return profile_at(state, now + horizon)


def seed_profile(state: ForecastState, policy: ScalingPolicy, history: Iterable[tuple[float, float]]) -> int:
    """Learn the time-of-day profile from (unix time, load replica-units) samples, e.g. the last
    days of demand read back from Prometheus. Returns the number of samples used."""
    _ensure(state, policy)
    previous: float | None = None
    used = 0
    for when, load in sorted(history):
        if not (math.isfinite(when) and math.isfinite(load)) or load < 0:
            continue
        weight = policy.decision_interval_seconds if previous is None else min(when - previous, 3600.0)
        previous = when
        if weight <= 0:
            continue
        if state.first_time is None or when < state.first_time:
            state.first_time = when
        _learn_profile(state, when, load, weight)
        used += 1
    _score_seeded_daily(state, policy, history)
    return used


def _score_seeded_daily(
    state: ForecastState, policy: ScalingPolicy, history: Iterable[tuple[float, float]]
) -> None:
    """Give the seeded daily profile a track record: replay the history at the prior horizon and
    score it against persistence (in sample: the profile has seen these days, so the daily model
    must still beat persistence live to keep its place; this only lets it start at once)."""
    if state.scored_seconds >= MIN_SCORED_SECONDS:
        return  # live outcomes already judge the models
    samples = sorted((w, v) for w, v in history if math.isfinite(w) and math.isfinite(v) and v >= 0)
    horizon = policy.cold_start_seconds + policy.decision_interval_seconds
    times = [when for when, _ in samples]
    persistence_error = daily_error = 0.0
    scored = 0
    for when, load in samples:
        later = bisect.bisect_left(times, when + horizon)
        if later >= len(samples) or later == 0:
            continue
        (t0, v0), (t1, v1) = samples[later - 1], samples[later]
        if t1 - t0 > 3600.0 or t1 <= t0:
            continue
        outcome = v0 + (v1 - v0) * (when + horizon - t0) / (t1 - t0)
        now_value = _interpolate(state.profile, state.profile_weight, SECONDS_PER_DAY, when)
        then_value = _interpolate(state.profile, state.profile_weight, SECONDS_PER_DAY, when + horizon)
        if now_value is None or then_value is None:
            continue
        persistence_error += abs(outcome - load)
        daily_error += abs(outcome - max(0.0, load + then_value - now_value))
        scored += 1
    if scored == 0:
        return
    state.model_error = [persistence_error / scored] * len(MODEL_NAMES)
    state.model_error[len(MODEL_NAMES) - 1] = daily_error / scored
    state.scored_seconds = MIN_SCORED_SECONDS

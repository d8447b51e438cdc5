"""Demand forecast: Holt's linear trend on load plus a learned time-of-day profile.

- Short term: Holt double exponential smoothing for irregular time steps. The smoothing
  constants come from time constants (alpha = 1 - exp(-dt / tau)), so the forecast behaves the
  same whether `decide` runs every 2 s or every 30 s. The trend is damped: it extrapolates at most
  one trend time constant ahead, so a burst does not project to infinity.
- Seasonal: one value per time-of-day bin (96 bins of 15 min by default), a running mean during
  the first day and an exponential memory of ~3 days after that. It is serialised in the scaler
  state and can be seeded from history (`seed_profile`) so a restart keeps it.
- Uncertainty: an exponentially weighted upside semi-variance (one stable window of memory) of
  one-step residuals; the upper bound is point + z x sigma, widened with the square root of the
  horizon.

The seasonal forecast shifts the current level by the profile's change between now and the
horizon (additive, so an empty bin cannot blow up a ratio).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from llmscale.scaling.types import ForecastState, ScalingPolicy

SECONDS_PER_DAY = 86_400.0
PROFILE_MEMORY_DAYS = 3.0
MAX_GAP_FACTOR = 10.0
"""Samples further apart than this many trend time constants restart the Holt model."""


def _bins(policy: ScalingPolicy) -> int:
    return max(1, round(SECONDS_PER_DAY / policy.profile_bin_seconds))


def _ensure_profile(state: ForecastState, policy: ScalingPolicy) -> None:
    count = _bins(policy)
    if len(state.profile) != count or state.profile_bin_seconds != policy.profile_bin_seconds:
        state.profile = [0.0] * count
        state.profile_weight = [0.0] * count
        state.profile_bin_seconds = policy.profile_bin_seconds


def _bin_index(state: ForecastState, when: float) -> int:
    return int((when % SECONDS_PER_DAY) // state.profile_bin_seconds) % len(state.profile)


def _learn_profile(state: ForecastState, when: float, load: float, weight_seconds: float) -> None:
    index = _bin_index(state, when)
    state.profile_weight[index] += weight_seconds
    # Running mean while the bin is young, then exponential forgetting with a few days' memory.
    step = max(
        weight_seconds / state.profile_weight[index],
        weight_seconds / (state.profile_bin_seconds * PROFILE_MEMORY_DAYS),
    )
    state.profile[index] += min(1.0, step) * (load - state.profile[index])


def update(state: ForecastState, policy: ScalingPolicy, load: float, now: float) -> None:
    """Fold one load sample (replica-units) at `now` into the model, in place."""
    _ensure_profile(state, policy)
    if state.first_time is None:
        state.first_time = now
    if state.last_time is None or now - state.last_time > MAX_GAP_FACTOR * policy.forecast_trend_seconds:
        state.level = load
        state.trend_per_second = 0.0
        state.residual_variance = 0.0
        state.last_time = now
        _learn_profile(state, now, load, policy.decision_interval_seconds)
        return
    dt = now - state.last_time
    if dt <= 0:
        return
    alpha = 1.0 - math.exp(-dt / policy.forecast_level_seconds)
    beta = 1.0 - math.exp(-dt / policy.forecast_trend_seconds)
    predicted = max(0.0, state.level + state.trend_per_second * dt)
    residual = load - predicted
    level = predicted + alpha * residual
    state.trend_per_second += beta * ((level - state.level) / dt - state.trend_per_second)
    state.level = level
    # Upside semi-variance (x 2, so symmetric noise gives the plain variance): the upper bound
    # guards against load above the forecast, and a sudden drop must not widen it. The spread
    # forgets over one stable window: a past ramp must not inflate it for minutes.
    gamma = 1.0 - math.exp(-dt / policy.stable_window_seconds)
    upside = max(residual, 0.0)
    state.residual_variance += gamma * (2.0 * upside * upside - state.residual_variance)
    state.last_time = now
    _learn_profile(state, now, load, dt)


def profile_at(state: ForecastState, when: float) -> float | None:
    """Learned load at time of day `when`, linearly interpolated between bin centres.

    None until the evidence spans a day (before that a bin only holds today's recent past, which
    is no time-of-day information) and when either neighbouring bin has less than half a bin's
    worth of evidence."""
    if not state.profile or state.first_time is None or state.last_time is None:
        return None
    if state.last_time - state.first_time < SECONDS_PER_DAY:
        return None
    width = state.profile_bin_seconds
    position = (when % SECONDS_PER_DAY) / width - 0.5
    lower = math.floor(position)
    fraction = position - lower
    count = len(state.profile)
    first, second = lower % count, (lower + 1) % count
    if state.profile_weight[first] < 0.5 * width or state.profile_weight[second] < 0.5 * width:
        return None
    return state.profile[first] * (1.0 - fraction) + state.profile[second] * fraction


def predict(
    state: ForecastState, policy: ScalingPolicy, now: float, horizon_seconds: float
) -> tuple[float, float]:
    """(point, upper) load in replica-units expected at now + horizon."""
    if state.last_time is None:
        return 0.0, 0.0
    tau = policy.forecast_trend_seconds
    # Damped trend: at most one time constant of extrapolation.
    effective_horizon = tau * (1.0 - math.exp(-max(0.0, horizon_seconds) / tau))
    holt = max(0.0, state.level + state.trend_per_second * effective_horizon)
    point, upper_base = holt, holt
    now_profile = profile_at(state, now)
    then_profile = profile_at(state, now + horizon_seconds)
    if now_profile is not None and then_profile is not None:
        seasonal = max(0.0, state.level + then_profile - now_profile)
        point = 0.5 * (holt + seasonal)
        upper_base = max(holt, seasonal)
    sigma = math.sqrt(max(0.0, state.residual_variance))
    widening = math.sqrt(1.0 + max(0.0, horizon_seconds) / tau)
    upper = upper_base + policy.forecast_uncertainty_z * sigma * widening
    return point, upper


def seed_profile(state: ForecastState, policy: ScalingPolicy, history: Iterable[tuple[float, float]]) -> int:
    """Learn the time-of-day profile from (unix time, load replica-units) samples, e.g. the last
    days of demand read back from Prometheus. Returns the number of samples used."""
    _ensure_profile(state, policy)
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
    return used

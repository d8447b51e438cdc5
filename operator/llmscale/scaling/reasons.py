"""Reason constants: CamelCase, shown verbatim in status.lastDecisions, conditions and Events."""

from __future__ import annotations

# --- validity ---------------------------------------------------------------------------------
METRICS_UNAVAILABLE = "MetricsUnavailable"
"""No usable metrics: replicas are held (valid=False), never scaled to zero."""

# --- strategy choice (Auto rule chain and fixed strategies) -----------------------------------
USER_SELECTED = "UserSelected"
LEARNING_DEMAND = "LearningDemand"
IDLE_FITS_ERROR_BUDGET = "IdleFitsErrorBudget"
COLD_START_EXCEEDS_DEMAND_CYCLE = "ColdStartExceedsDemandCycle"
DEMAND_FLAT = "DemandFlat"
DEMAND_VARIES = "DemandVaries"
COLD_STARTS_NOT_ABSORBED = "ColdStartsNotAbsorbed"
"""Bursts follow silences and no keep-alive short of all of them fits the error budget: Warm."""
STRATEGY_DWELL = "StrategyDwell"

# --- 1<->N scaler ------------------------------------------------------------------------------
SCALE_UP_LOAD = "LoadAboveCapacity"
SCALE_UP_FORECAST = "ForecastRamp"
SCALE_UP_PANIC = "PanicMode"
SCALE_UP_RATE_LIMITED = "ScaleUpRateLimited"
SCALE_DOWN = "LoadBelowCapacity"
SCALE_DOWN_DELAYED = "ScaleDownDelayed"
WITHIN_HYSTERESIS = "WithinHysteresis"
BOUNDS = "ReplicaBounds"
WARM_PEAK = "WarmAtPeak"
BACKLOG_DRAINING = "BacklogDraining"
"""Requests wait (engines or gateway): no scale-down until they are served."""
KEEP_ALIVE_HOLD = "KeepAliveHold"
"""A proven idle gap is shorter than the keep-alive: capacity stays for the next burst."""

# --- keep-alive windows (idle-gap histogram) ---------------------------------------------------
KEEP_ALIVE_LEARNED = "KeepAliveLearned"
KEEP_ALIVE_FALLBACK = "KeepAliveFallback"
"""The idle-gap histogram is not representative yet: the fixed fallback keep-alive applies."""
PREWARM_GAP = "PreWarmIdleGap"
"""At zero, the gap has reached the learned pre-warm point (head of the gap histogram)."""

# --- forecast model ----------------------------------------------------------------------------
FORECAST_LEARNING = "ForecastLearning"
"""Too few outcomes scored yet: persistence is used."""
FORECAST_MODEL_SELECTED = "ForecastModelSelected"
"""A model beats persistence at the horizon on this deployment's own outcomes; it is used."""
FORECAST_PERSISTENCE = "ForecastPersistence"
"""No model beats persistence at the horizon: the forecast falls back to it."""

# --- 0<->1 activation --------------------------------------------------------------------------
ACTIVATION_REQUESTED = "ActivationRequested"
GATEWAY_QUEUE = "GatewayQueue"
DEMAND_AT_ZERO = "DemandAtZero"
PREDICTIVE_WARM_UP = "PredictiveWarmUp"
WAKING = "Waking"
SCALED_TO_ZERO = "ScaledToZero"
IDLE_PROVEN = "IdleProven"
IDLE_NOT_PROVEN = "IdleNotProven"
RAMP_FORECAST = "RampForecast"

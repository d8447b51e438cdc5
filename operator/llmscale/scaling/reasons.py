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

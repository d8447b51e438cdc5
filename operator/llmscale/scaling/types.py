"""The decision core's vocabulary: inputs, policy, decision and the serialisable scaler state.

Everything here is plain data. `decide` (in `llmscale.scaling.core`) is a pure function of a
`DecisionInputs`, a `ScalingPolicy`, a `ScalerState` and an injected `now`; the operator and the
simulator build the inputs, call it and apply `Decision.desired_replicas`. The state travels in
the resource's status (`ScalerState.to_dict()` / `from_dict()`) so a restarted operator resumes
exactly where the previous one stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
from dataclasses import dataclass, field
from typing import Any

from llmscale.api import defaults
from llmscale.api.duration import parse_duration_seconds


class Strategy(enum.StrEnum):
    """What the user asks for (`Auto`) or what `Auto` chose (the other three)."""

    AUTO = "Auto"
    WARM = "Warm"
    AUTOSCALED = "Autoscaled"
    SCALE_TO_ZERO = "ScaleToZero"


def parse_strategy(value: object) -> Strategy | None:
    """The Strategy named by `value` ("Auto", "Warm", ...), or None."""
    if isinstance(value, str) and value in Strategy._value2member_map_:
        return Strategy(value)
    return None  # a stale or foreign value: treated as unknown


@dataclass(frozen=True)
class DecisionInputs:
    """One gathered observation of a deployment (everything `decide` needs besides its state).

    Engine-side rates are windowed as Prometheus shows them (they lag the truth by the scrape
    interval plus half the rate window); gateway signals are immediate. None means "no data".
    """

    current_replicas: int
    """Replicas provisioned now, including ones still starting (the /scale value)."""
    ready_replicas: int
    request_rate_rps: float = 0.0
    """Finished-or-admitted requests per second seen by the engines (rate of request_success)."""
    prompt_tokens_per_second: float = 0.0
    generation_tokens_per_second: float = 0.0
    num_requests_waiting: float = 0.0
    """Sum over replicas of vllm:num_requests_waiting."""
    num_requests_running: float = 0.0
    kv_cache_usage: float | None = None
    """Mean over replicas, 0..1."""
    ttft_p95_seconds: float | None = None
    itl_p95_seconds: float | None = None
    gateway_arrivals_rps: float | None = None
    """Requests per second arriving at the gateway over the same window as the engine rates
    (None when no gateway counts them)."""
    gateway_recent_arrivals_rps: float | None = None
    """Arrivals per second over the last decision interval only (immediate, noisier): feeds the
    panic window. None: `gateway_arrivals_rps` is used."""
    gateway_queue_depth: int = 0
    """Requests the gateway holds because no replica is ready."""
    metrics_available: bool = True
    """False when Prometheus failed, returned nothing or NaN for this deployment."""
    cold_start_p50_seconds: float | None = None
    cold_start_p95_seconds: float | None = None
    """Measured pod creation -> Ready; None until observed (the policy's prior is used)."""
    activation_requested: bool = False
    """The gateway holds a request for this deployment and asked for a replica."""
    missing_demand_signals: frozenset[str] = frozenset()
    """Demand signals (engine request rate, running, waiting; gateway arrivals and queue) that had
    no data this time. Zero replicas is never chosen unless this is empty and every one is zero:
    a missing series is never taken as "no traffic" (the idle guard in `decide`)."""


# The spec's defaults (llmscale.api.defaults) in the core's units.
_DEFAULT_STRATEGY = Strategy(defaults.SCALING_STRATEGY)
_DEFAULT_MIN_REPLICAS = defaults.min_replicas_for(defaults.SCALING_STRATEGY)
_DEFAULT_SLO_TTFT_P95_SECONDS = parse_duration_seconds(defaults.SLO_TTFT_P95)
_DEFAULT_SLO_ITL_P95_SECONDS = parse_duration_seconds(defaults.SLO_ITL_P95)


@dataclass(frozen=True)
class ScalingPolicy:
    """User intent and tuning. Every default comes from `llmscale.api.defaults` (the one source);
    `llmscale.scaling.policy_from_spec` builds the policy of an LLMDeployment for the operator and
    the simulator alike.

    Capacity is given as plain numbers (the caller derives them from the replica performance model
    or the planner), so the core never imports the simulator: one replica, saturated, prefills
    `capacity_prompt_tokens_per_second` or decodes `capacity_generation_tokens_per_second`; a mix
    costs the sum of both fractions. Example, Llama-3-8B on H100 with 202 in / 179 out tokens:
    ~40,000 prompt tok/s and ~7,400 generated tok/s make 1 / (202/40000 + 179/7400) = 34 req/s.
    """

    strategy: Strategy = _DEFAULT_STRATEGY
    min_replicas: int = _DEFAULT_MIN_REPLICAS
    max_replicas: int = defaults.MAX_REPLICAS
    slo_ttft_p95_seconds: float = _DEFAULT_SLO_TTFT_P95_SECONDS
    slo_itl_p95_seconds: float | None = _DEFAULT_SLO_ITL_P95_SECONDS
    slo_objective: float = defaults.SLO_OBJECTIVE
    """Fraction of requests that must meet the SLO; 1 - objective is the error budget."""
    gpu_price_per_hour_usd: float = defaults.GPU_PRICE_PER_HOUR_USD
    gpus_per_replica: int = 1
    capacity_prompt_tokens_per_second: float = defaults.CAPACITY_PROMPT_TOKENS_PER_SECOND
    capacity_generation_tokens_per_second: float = defaults.CAPACITY_GENERATION_TOKENS_PER_SECOND
    target_utilization: float = defaults.TARGET_UTILIZATION
    """Prior share of saturation one replica may carry while meeting the TTFT SLO (refined online)."""
    decision_interval_seconds: float = defaults.DECISION_INTERVAL_SECONDS
    """How often `decide` is called (the operator's timer, the simulator's tick)."""
    cold_start_seconds: float = defaults.COLD_START_SECONDS
    """Prior for pod creation -> Ready, used until `cold_start_p95_seconds` is measured."""
    stable_window_seconds: float = defaults.STABLE_WINDOW_SECONDS
    """Time constant of the stable load average (KPA: 60 s)."""
    panic_window_seconds: float = defaults.PANIC_WINDOW_SECONDS
    """Time constant of the panic load average (KPA: 6 s)."""
    panic_threshold: float = defaults.PANIC_THRESHOLD
    """Enter panic when the panic-window need reaches this multiple of ready replicas (KPA: 200 %)."""
    scale_down_delay_seconds: float = defaults.SCALE_DOWN_DELAY_SECONDS
    """A scale-down happens only when every recommendation in this window allows it."""
    hysteresis: float = defaults.HYSTERESIS
    """Tolerance around the fleet (the HPA's 10 %, both ways): scale down only when the need
    plus this fraction still fits in fewer replicas; scale up on the stable-window or forecast
    need only beyond current x (1 + this). Bursts (panic window) and backlogs are exempt."""
    slo_headroom_rise_seconds: float = defaults.SLO_HEADROOM_RISE_SECONDS
    """Seconds of measured SLO misses (a p95 over target) that add one replica of headroom."""
    slo_headroom_max: float = defaults.SLO_HEADROOM_MAX_REPLICAS
    """Most replicas the SLO headroom may add."""
    slo_headroom_decay_seconds: float = defaults.SLO_HEADROOM_DECAY_SECONDS
    """Time constant of the headroom's decay while the SLO holds."""
    max_scale_up_rate: float = defaults.MAX_SCALE_UP_RATE
    """At most this multiple of current replicas per decision (plus 4), KPA-style."""
    max_scale_down_rate: float = defaults.MAX_SCALE_DOWN_RATE
    """At most current / rate replicas removed per decision (KPA: 2)."""
    idle_window_seconds: float = defaults.IDLE_WINDOW_SECONDS
    """Positive proof of idleness (zero arrivals, running, waiting) must last this long before 0."""
    forecast_level_seconds: float = defaults.FORECAST_LEVEL_SECONDS
    """Time constant of the Holt level (seconds)."""
    forecast_trend_seconds: float = defaults.FORECAST_TREND_SECONDS
    """Time constant of the Holt trend (seconds)."""
    forecast_uncertainty_z: float = defaults.FORECAST_UNCERTAINTY_Z
    """What the scaler provisions for above the point forecast: z x the spread of recent upside
    surprises (1.0: one-sided 84 %), never beyond the error window's plain 95th percentile. The
    interval in status does not depend on it."""
    profile_bin_seconds: float = defaults.PROFILE_BIN_SECONDS
    """Width of a time-of-day profile bin (900 s -> 96 bins a day)."""
    strategy_dwell_seconds: float = defaults.STRATEGY_DWELL_SECONDS
    """Auto keeps a concrete strategy at least this long before switching (no strategy flapping)."""
    min_history_seconds: float = defaults.MIN_HISTORY_SECONDS
    """Auto needs this much observed history before it considers Warm or ScaleToZero."""
    dry_run: bool = False
    """spec.scaling.mode DryRun: every decision is made and recorded, none applied."""

    def __post_init__(self) -> None:
        if self.min_replicas < 0:
            raise ValueError(f"min_replicas: value {self.min_replicas} is negative; expected >= 0")
        if self.max_replicas < max(1, self.min_replicas):
            raise ValueError(
                f"max_replicas: value {self.max_replicas} is below max(1, min_replicas="
                f"{self.min_replicas}); expected >= {max(1, self.min_replicas)}"
            )
        if not 0.0 < self.slo_objective < 1.0:
            raise ValueError(f"slo_objective: value {self.slo_objective} is outside (0, 1)")
        for name in (
            "slo_ttft_p95_seconds",
            "capacity_prompt_tokens_per_second",
            "capacity_generation_tokens_per_second",
            "decision_interval_seconds",
            "stable_window_seconds",
            "panic_window_seconds",
            "forecast_level_seconds",
            "forecast_trend_seconds",
            "profile_bin_seconds",
            "slo_headroom_decay_seconds",
            "slo_headroom_rise_seconds",
        ):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name}: value {value} must be a positive number")
        if not 0.05 <= self.target_utilization <= 1.0:
            raise ValueError(f"target_utilization: value {self.target_utilization} is outside [0.05, 1]")
        if not (self.slo_headroom_max >= 0.0 and math.isfinite(self.slo_headroom_max)):
            raise ValueError(f"slo_headroom_max: value {self.slo_headroom_max} must be a number >= 0")
        if self.max_scale_up_rate < 1.0 or self.max_scale_down_rate < 1.0:
            raise ValueError("max_scale_up_rate and max_scale_down_rate must be >= 1")

    @property
    def replica_price_per_hour_usd(self) -> float:
        return self.gpu_price_per_hour_usd * self.gpus_per_replica


@dataclass(frozen=True)
class Forecast:
    """Demand expected at `horizon_seconds` from now (the measured cold start + one interval)."""

    horizon_seconds: float
    requests_per_second: float
    requests_per_second_upper: float
    load_replicas: float
    """Point forecast in replica-units of work (1.0 = one replica saturated)."""
    load_replicas_upper: float
    """What the scaler provisions for (the interval's upper end, capped: `forecast.scaling_upper`)."""
    requests_per_second_lower: float = 0.0
    """Lower end of the nominal 90 % interval (`requests_per_second_upper` is its other end)."""
    model: str = "persistence"
    """The forecaster in use (`persistence`, `holt`, `smooth60`, `period3600`, `daily`, ...)."""
    reason: str = ""
    """Why that one (a `llmscale.scaling.reasons` constant: ForecastModelSelected, ...)."""

    def to_status(self) -> dict[str, float | str]:
        """The `status.forecast` object of the LLMDeployment."""
        status: dict[str, float | str] = {
            "requestsPerSecond": round(self.requests_per_second, 4),
            "lower": round(self.requests_per_second_lower, 4),
            "upper": round(self.requests_per_second_upper, 4),
            "horizonSeconds": round(self.horizon_seconds, 1),
            "model": self.model,
        }
        if self.reason:
            status["reason"] = self.reason
        return status


# --- state -----------------------------------------------------------------------------------

STATE_VERSION = 1


@dataclass
class ForecastState:
    """Holt level/trend on load (replica-units) plus a learned time-of-day profile."""

    first_time: float | None = None
    """Earliest evidence (live or seeded); the profile is trusted once it spans a day."""
    last_time: float | None = None
    level: float = 0.0
    trend_per_second: float = 0.0
    residual_variance: float = 0.0
    profile_bin_seconds: float = 900.0
    profile: list[float] = field(default_factory=list)
    """Mean load per time-of-day bin (replica-units); empty until the first sample."""
    profile_weight: list[float] = field(default_factory=list)
    """How much evidence each bin holds (0 = never seen)."""
    last_sample: float = 0.0
    """The latest load sample (what persistence predicts)."""
    smooth: list[float] = field(default_factory=list)
    """Exponential averages of load, one per `forecast.SMOOTH_SECONDS` time constant."""
    periodic: list[list[float]] = field(default_factory=list)
    """Sub-daily profiles, one per `forecast.PERIODS_SECONDS` period (mean load per phase bin)."""
    periodic_weight: list[list[float]] = field(default_factory=list)
    pending: list[list[float]] = field(default_factory=list)
    """Forecasts awaiting their outcome: [target time, issued time, chosen, candidate 0, 1, ...]."""
    model_error: list[float] = field(default_factory=list)
    """Exponentially weighted absolute error at the horizon, one per candidate model."""
    scored_seconds: float = 0.0
    """Decaying amount of scored evidence (seconds of outcomes)."""
    selected: str = ""
    """The model in use (`forecast.MODEL_NAMES`; "" until the first scored outcome)."""
    residuals: list[float] = field(default_factory=list)
    """The latest (outcome - forecast) errors at the horizon, oldest first: their quantiles at
    the two levels below are the interval (split conformal prediction)."""
    interval_alpha_low: float = 0.05
    """Adaptive conformal level of the lower tail (its quantile of the errors); starts at 5 %."""
    interval_alpha_high: float = 0.05
    """Adaptive conformal level of the upper tail (the 1 - alpha quantile); starts at 5 %."""


@dataclass
class CapacityState:
    """Online refinement of how much load one replica sustains within the TTFT SLO."""

    sustainable_load_per_replica: float | None = None
    """Replica-units one replica may carry (None = policy prior); bounded around the prior."""
    observations: int = 0
    last_violation_time: float | None = None
    throughput_scale: float | None = None
    """Observed saturated work per replica over the prior's (1.0 = the performance model is right):
    learned while engine queues show replicas saturated; scales both token capacities."""
    saturated_since: float | None = None
    """Start of the current unbroken run of decisions that saw the replicas saturated."""


@dataclass
class WorkloadState:
    """Demand statistics that the strategy rules read (tokens per request, idle periods)."""

    first_time: float | None = None
    last_time: float | None = None
    observed_seconds: float = 0.0
    mean_prompt_tokens: float = 0.0
    mean_generation_tokens: float = 0.0
    settled_since: float | None = None
    """Since when every provisioned replica (at least one) has been Ready; None otherwise."""
    busy_since: float | None = None
    idle_since: float | None = None
    """Start of the current positively proven idle period (None while busy or unknown)."""
    idle_seconds_long: float = 0.0
    """Total time spent in idle periods longer than the cold start (the time zero could save)."""
    wakeups: float = 0.0
    """Number of busy periods that started after such a long idle period."""
    wake_requests: float = 0.0
    """Requests that arrived within one cold start after those wake-ups (they would wait)."""
    wake_window_end: float | None = None
    total_requests: float = 0.0
    peak_load: float = 0.0
    """Decaying maximum of load (replica-units), half-life a few hours: what Warm provisions."""
    peak_time: float | None = None
    mix_requests: float = 0.0
    mix_prompt_tokens: float = 0.0
    mix_generation_tokens: float = 0.0
    """Decaying sums of requests and tokens (the request mix = their ratios), learned always."""
    last_busy_time: float | None = None
    """When demand was last seen (arrivals, running, waiting or held): the start of the current
    gap for pre-warming, which a metrics outage (no proof of idleness) does not reset."""
    last_gap_seconds: float = 0.0
    """Length of the idle gap that ended the last time a busy period began (0 before any)."""
    busy_peak_load: float = 0.0
    """Largest stable-window load of the current (or last) busy period, replica-units: what a
    keep-alive holds through the next idle gap."""
    gap_histogram: list[float] = field(default_factory=list)
    """Decaying counts of completed idle gaps per `keepalive.GAP_EDGES_SECONDS` bin."""
    gaps_out_of_bounds: float = 0.0
    burst_requests: float = 0.0
    burst_count: float = 0.0
    """Requests in the first cold start of busy periods after gaps, and how many such periods."""
    burst_window_end: float | None = None
    misses_estimated: float = 0.0
    """Requests estimated to have met no replica (held at zero, or beyond a backlog): budget spent."""


@dataclass
class ScalerWindowState:
    """1<->N scaler memory: load averages and the window of recent recommendations."""

    last_time: float | None = None
    stable_load: float = 0.0
    panic_load: float = 0.0
    panic_until: float | None = None
    recommendations: list[list[float]] = field(default_factory=list)
    """[time, replicas] pairs, a monotonic deque: the maximum over the scale-down window."""
    last_scale_time: float | None = None
    slo_headroom: float = 0.0
    """Replicas kept beyond the need on scale-down, learned from SLO misses
    (`scaler.update_slo_headroom`)."""


@dataclass
class ActivationState:
    """0<->1 state machine: Active, Zero, Waking."""

    phase: str = "Active"
    since: float | None = None
    reason: str = ""


@dataclass
class StrategyState:
    current: str | None = None
    since: float | None = None
    reason: str = ""
    message: str = ""


@dataclass
class ScalerState:
    """Everything `decide` remembers between calls; JSON-serialisable via to_dict/from_dict."""

    forecast: ForecastState = field(default_factory=ForecastState)
    capacity: CapacityState = field(default_factory=CapacityState)
    workload: WorkloadState = field(default_factory=WorkloadState)
    scaler: ScalerWindowState = field(default_factory=ScalerWindowState)
    activation: ActivationState = field(default_factory=ActivationState)
    strategy: StrategyState = field(default_factory=StrategyState)
    last_desired_replicas: int | None = None
    last_decision_time: float | None = None

    def clone(self) -> ScalerState:
        """A deep copy (decide never mutates its input). Hand-written: deepcopy costs ~10x more
        and the simulator calls decide tens of thousands of times per run."""
        forecast = dataclasses.replace(
            self.forecast,
            profile=list(self.forecast.profile),
            profile_weight=list(self.forecast.profile_weight),
            smooth=list(self.forecast.smooth),
            periodic=[list(row) for row in self.forecast.periodic],
            periodic_weight=[list(row) for row in self.forecast.periodic_weight],
            pending=[list(row) for row in self.forecast.pending],
            model_error=list(self.forecast.model_error),
            residuals=list(self.forecast.residuals),
        )
        scaler = dataclasses.replace(
            self.scaler, recommendations=[list(entry) for entry in self.scaler.recommendations]
        )
        return ScalerState(
            forecast=forecast,
            capacity=dataclasses.replace(self.capacity),
            workload=dataclasses.replace(self.workload, gap_histogram=list(self.workload.gap_histogram)),
            scaler=scaler,
            activation=dataclasses.replace(self.activation),
            strategy=dataclasses.replace(self.strategy),
            last_desired_replicas=self.last_desired_replicas,
            last_decision_time=self.last_decision_time,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "forecast": _fields(self.forecast),
            "capacity": _fields(self.capacity),
            "workload": _fields(self.workload),
            "scaler": _fields(self.scaler),
            "activation": _fields(self.activation),
            "strategy": _fields(self.strategy),
            "lastDesiredReplicas": self.last_desired_replicas,
            "lastDecisionTime": self.last_decision_time,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ScalerState:
        """Restore a state; unknown keys are ignored, missing or malformed parts start fresh.

        A state written by an older or newer operator must never crash the loop: the worst case
        is relearning (the replicas themselves are never taken from here).
        """
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            return cls()
        state = cls(
            forecast=_load(ForecastState, data.get("forecast")),
            capacity=_load(CapacityState, data.get("capacity")),
            workload=_load(WorkloadState, data.get("workload")),
            scaler=_load(ScalerWindowState, data.get("scaler")),
            activation=_load(ActivationState, data.get("activation")),
            strategy=_load(StrategyState, data.get("strategy")),
        )
        last = data.get("lastDesiredReplicas")
        state.last_desired_replicas = last if isinstance(last, int) and last >= 0 else None
        when = data.get("lastDecisionTime")
        state.last_decision_time = float(when) if isinstance(when, int | float) else None
        return state


def _fields(obj: Any) -> dict[str, Any]:
    return {name: copy.deepcopy(getattr(obj, name)) for name in obj.__dataclass_fields__}


def _load(kind: type[Any], data: Any) -> Any:
    fresh = kind()
    if not isinstance(data, dict):
        return fresh
    for name in fresh.__dataclass_fields__:
        if name not in data:
            continue
        value = data[name]
        default = getattr(fresh, name)
        if _compatible(default, value, kind.__annotations__.get(name, "")):
            setattr(fresh, name, copy.deepcopy(value))
    return fresh


def _compatible(default: Any, value: Any, annotation: str) -> bool:
    if value is None:
        return "None" in str(annotation)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float) or "float" in str(annotation):
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(default, int) or "int" in str(annotation):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, str) or "str" in str(annotation):
        return isinstance(value, str)
    return True


@dataclass(frozen=True)
class Decision:
    """What `decide` returns. `reason` is a CamelCase constant (see `llmscale.scaling.reasons`)."""

    desired_replicas: int
    strategy: Strategy
    """The concrete strategy in force (never Auto)."""
    reason: str
    message: str
    valid: bool
    """False = not enough data: the caller keeps current replicas (desired_replicas says so too)."""
    forecast: Forecast | None
    next_state: ScalerState
    strategy_reason: str = ""
    strategy_message: str = ""
    load_replicas: float = 0.0
    """Measured demand in replica-units of work (1.0 = one replica saturated)."""
    sustainable_load_per_replica: float = 0.0
    """The capacity model's current answer (replica-units per replica)."""
    dry_run: bool = False
    """True under mode DryRun: recorded (status, Events), never applied; the caller keeps replicas."""

    def replicas_to_apply(self, current_replicas: int) -> int:
        """What the caller sets the replica count to: the decision, or `current_replicas` in DryRun."""
        return current_replicas if self.dry_run else self.desired_replicas

"""Parity: the operator's scaling loop and the simulator's `llmscale` policy decide the same.

One timeline of inputs -- Prometheus answers (engine and gateway series, outages), the gateway's
activation signal, pod readiness and the clock -- is replayed through

(a) the operator's real loop (`controller.autoscaling.loop.Autoscaler.tick`/`activate`) over fake
    Kubernetes (`FakeCluster`) and Prometheus (`FakeMetricsSource`) adapters, and
(b) the simulator's policy (`sim.llmscale_policy.LLMScalePolicy.decide`) on `FleetObservation`s,

and both must yield the same sequence of (replicas applied, strategy, reason), tick by tick.

The seam it guards: both sides are gather -> `llmscale.scaling.decide` -> apply
`Decision.replicas_to_apply` verbatim. The policy comes from one `policy_for_resource` of one
manifest, the gather rules are shared (`scaling.core.metrics_usable`, `IDLE_PROOF_SIGNALS`), and
everything between gather and apply -- the idle guard, waking from zero, "no data holds", DryRun
-- is inside `decide`. A step added on one side only (a guard after `decide` in the loop, a
clamp in the simulator adapter, a different wake path, a policy field read from elsewhere)
changes that side's triple on this timeline, because the timeline passes through every branch
such a step would touch: scale-up under load, a Prometheus outage, positive idleness and scale
to zero, an idle stretch with the gateway's series missing (the guard), a wake on the gateway's
signal, the waking hold, and DryRun. `test_the_timeline_visits_every_branch` keeps it from
going vacuous; `test_a_step_added_to_one_side_breaks_parity` shows the failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from autoscaler_testkit import Clock, FakeCluster

from llmscale.api import LLMDeployment
from llmscale.controller.autoscaling import loop as autoscale_loop
from llmscale.controller.autoscaling.loop import ACTIVATION_ANNOTATION, Autoscaler
from llmscale.controller.autoscaling.settings import AutoscalerSettings
from llmscale.metrics import MetricsSource
from llmscale.metrics.gateway_scrape import GatewayOverlaySource, GatewayScraper
from llmscale.scaling import Decision
from llmscale.sim import llmscale_policy
from llmscale.sim.llmscale_policy import LLMScalePolicy
from llmscale.sim.perfmodel import ReplicaPerformanceModel
from llmscale.sim.policy import FleetObservation, SimContext
from llmscale.timestamps import rfc3339
from llmscale_tools.fakes.metrics import FakeMetricsSource

NS, NAME = "ns", "chat"
INTERVAL = 5.0
POD_COLD_START_SECONDS = 10.0
"""Pods of the timeline become Ready this long after they are created (two ticks)."""
FAST = {
    "scale_down_delay_seconds": 20.0,
    "idle_window_seconds": 20.0,
    "stable_window_seconds": 10.0,
    "cold_start_seconds": POD_COLD_START_SECONDS,
}

Triple = tuple[int, str, str]


def manifest(mode: str = "Active") -> dict[str, Any]:
    return {
        "metadata": {"name": NAME, "namespace": NS, "uid": "uid-chat", "generation": 1, "annotations": {}},
        "spec": {
            "model": {"name": "meta-llama/Meta-Llama-3-8B"},
            "resources": {"gpu": {"product": "H100-80GB"}},
            "scaling": {"strategy": "ScaleToZero", "mode": mode, "maxReplicas": 6, "slo": {"ttftP95": "1s"}},
        },
    }


@dataclass(frozen=True)
class Moment:
    """What the world says at one tick (every field is an input; none depends on a decision)."""

    rps: float = 0.0
    """Engine request rate (1000 prompt + 200 generated tokens per request) and gateway arrivals."""
    running: float = 0.0
    ttft_p95: float | None = None
    held: int = 0
    """Requests the gateway holds (no replica Ready)."""
    prometheus_down: bool = False
    gateway_series_missing: bool = False
    activation_signal: bool = False
    """The gateway annotates the LLMDeployment at this tick (it holds a request at zero)."""
    burst_rps: float | None = None
    """Arrivals per second the gateway counted over the last tick, where they differ from `rps`
    (a burst Prometheus' window has not seen yet); read only by a direct gateway read."""


def arrivals_in_tick(moment: Moment) -> int:
    """Requests that arrived at the gateway during the tick before this moment."""
    rate = moment.rps if moment.burst_rps is None else moment.burst_rps
    return round(rate * INTERVAL) + moment.held


def timeline() -> list[Moment]:
    light = Moment(rps=2.0, running=2.0, ttft_p95=0.15)
    heavy = Moment(rps=90.0, running=60.0, ttft_p95=0.6)
    idle = Moment()
    return [
        *[light] * 4,
        *[heavy] * 8,  # scale up; new pods Ready two ticks later
        *[Moment(prometheus_down=True)] * 3,  # hold what runs
        *[heavy] * 2,
        *[light] * 3,
        *[idle] * 4,  # positive idleness, for 20 s at the 5th tick...
        *[Moment(gateway_series_missing=True)] * 2,  # ...but no gateway series: no proof, no zero
        *[idle] * 20,  # proof again: down to zero
        Moment(held=1, activation_signal=True),  # the gateway holds a request at zero
        *[Moment(held=1)] * 2,  # waking: the pod is not Ready yet
        *[light] * 4,
    ]


def burst_timeline() -> list[Moment]:
    """`timeline()` then a burst the gateway sees a tick before Prometheus' window does, then
    Prometheus down during a second burst and after it."""
    light = Moment(rps=2.0, running=2.0, ttft_p95=0.15)
    return [
        *timeline(),
        Moment(rps=2.0, running=2.0, ttft_p95=0.15, burst_rps=120.0),
        *[light] * 16,  # back down to one replica
        *[Moment(prometheus_down=True, burst_rps=120.0)] * 2,
        *[Moment(prometheus_down=True)] * 3,
    ]


class TimelineGateway(GatewayScraper):
    """The real scraper reading one fake gateway pod whose counter the timeline advances."""

    def __init__(self) -> None:
        super().__init__(["http://gateway.test:8080"])
        self.total = 0
        self.held = 0

    async def targets(self) -> list[str]:
        return ["http://10.0.0.9:8080"]

    async def _fetch(self, session: object, url: str) -> str:
        return (
            "# TYPE llmscale_gateway_arrivals counter\n"
            f'llmscale_gateway_arrivals_total{{llmdeployment="{NAME}",namespace="{NS}"}} {self.total}\n'
            "# TYPE llmscale_gateway_queue_depth gauge\n"
            f'llmscale_gateway_queue_depth{{llmdeployment="{NAME}",namespace="{NS}"}} {self.held}\n'
        )


@dataclass
class Pods:
    """Pod readiness: created at the tick the replica count rises, Ready a cold start later."""

    created: list[float] = field(default_factory=list)

    def apply(self, replicas: int, now: float) -> None:
        while len(self.created) < replicas:
            self.created.append(now)
        # Scale-down removes the newest (still starting ones first), as the ReplicaSet does.
        del self.created[replicas:]

    def ready(self, now: float) -> int:
        return sum(1 for created in self.created if created + POD_COLD_START_SECONDS <= now)


def engine_signals(moment: Moment) -> dict[str, float | None]:
    return {
        "request_rate_rps": moment.rps,
        "prompt_tokens_per_second": moment.rps * 1000,
        "generation_tokens_per_second": moment.rps * 200,
        "num_requests_waiting": 0.0,
        "num_requests_running": moment.running,
        "kv_cache_usage": min(0.9, moment.running / 100),
        "ttft_p95_seconds": moment.ttft_p95,
        "itl_p95_seconds": 0.02 if moment.ttft_p95 is not None else None,
        "queue_time_p95_seconds": None,
    }


def _settings(direct: bool) -> AutoscalerSettings:
    urls = ("http://gateway.test:8080",) if direct else ()
    return AutoscalerSettings(
        interval_seconds=INTERVAL, metrics_port=None, overrides=FAST, gateway_metrics_urls=urls
    )


def run_operator(moments: list[Moment], mode: str = "Active", *, direct: bool = False) -> list[Triple]:
    """(a) the operator's loop: the fakes answer what the timeline says; the loop does the rest.
    `direct`: the loop also reads the gateway's /metrics itself (`GatewayOverlaySource`)."""
    clock, cluster, source = Clock(), FakeCluster(), FakeMetricsSource()
    settings = _settings(direct)
    gateway = TimelineGateway()
    overlay: MetricsSource = GatewayOverlaySource(source, gateway) if direct else source
    loop = Autoscaler(overlay, cluster, settings, clock=clock)
    body = manifest(mode)
    loop.observe(body)
    pods = Pods()
    pods.apply(1, clock.now - POD_COLD_START_SECONDS)
    out: list[Triple] = []

    async def go() -> None:
        for moment in moments:
            now = clock.now
            ready = pods.ready(now)
            cluster.set_workload(NS, NAME, len(pods.created), ready)
            source.recover()
            source.remove(NS, NAME)
            gateway.total += arrivals_in_tick(moment)
            gateway.held = moment.held
            if moment.prometheus_down:
                source.fail()
            else:
                if ready > 0:
                    source.set(NS, NAME, **engine_signals(moment))
                if not moment.gateway_series_missing:
                    source.set(
                        NS, NAME, gateway_arrivals_rps=moment.rps, gateway_queue_depth=float(moment.held)
                    )
            if moment.activation_signal:
                signalled = dict(
                    body, metadata={**body["metadata"], "annotations": {ACTIVATION_ANNOTATION: rfc3339(now)}}
                )
                assert await loop.activate(signalled) is True
            await loop.tick()
            applied = cluster.workloads[(NS, NAME)].replicas
            pods.apply(applied, now)
            memory = loop.tracked[(NS, NAME)].memory
            assert memory is not None and memory.last_strategy is not None and memory.last_reason is not None
            out.append((applied, memory.last_strategy, memory.last_reason))
            clock.advance(INTERVAL)

    asyncio.run(go())
    return out


def run_simulator(moments: list[Moment], mode: str = "Active", *, direct: bool = False) -> list[Triple]:
    """(b) the simulator's llmscale policy, built as the operator builds it, on the same timeline."""
    settings = _settings(direct)
    policy = LLMScalePolicy(
        deployment=LLMDeployment.from_body(manifest(mode)), settings=settings.policy_settings()
    )
    perf = ReplicaPerformanceModel.for_deployment("meta-llama/Meta-Llama-3-8B", "H100-80GB")
    policy.prepare(
        SimContext(
            model=perf,
            slo_ttft_p95_seconds=1.0,
            slo_itl_p95_seconds=None,
            slo_objective=0.99,
            cold_start_seconds=POD_COLD_START_SECONDS,
            gpu_price_per_hour_usd=perf.gpu_price_per_hour_usd,
            min_replicas=0,
            max_replicas=6,
            replica_capacity_rps=20.0,
            mean_input_tokens=1000.0,
            mean_output_tokens=200.0,
        )
    )
    assert policy.tick_seconds == INTERVAL
    policy.record_decisions = True
    now = Clock().now
    pods = Pods()
    pods.apply(1, now - POD_COLD_START_SECONDS)
    out: list[Triple] = []
    for moment in moments:
        ready = pods.ready(now)
        engines = not moment.prometheus_down and ready > 0
        signals = engine_signals(moment) if engines else {}
        gateway = not (moment.prometheus_down or moment.gateway_series_missing)
        observation = FleetObservation(
            now=now,
            current_replicas=len(pods.created),
            ready_replicas=ready,
            request_rate_rps=float(signals.get("request_rate_rps") or 0.0),
            prompt_tokens_rate=float(signals.get("prompt_tokens_per_second") or 0.0),
            generation_tokens_rate=float(signals.get("generation_tokens_per_second") or 0.0),
            num_requests_waiting=float(signals.get("num_requests_waiting") or 0.0),
            num_requests_running=float(signals.get("num_requests_running") or 0.0),
            kv_cache_usage=float(signals.get("kv_cache_usage") or 0.0),
            ttft_p95_seconds=signals.get("ttft_p95_seconds"),
            itl_p95_seconds=signals.get("itl_p95_seconds"),
            gateway_arrivals_rps=moment.rps,
            gateway_queue_depth=moment.held,
            metrics_available=engines,
            cold_start_p50_seconds=None,
            cold_start_p95_seconds=None,
            gateway_arrivals_last_tick=arrivals_in_tick(moment) if direct else moment.held,
            gateway_reporting=gateway,
            gateway_queue_now=moment.held,
            prometheus_answered=not moment.prometheus_down,
        )
        applied = policy.decide(observation)
        pods.apply(applied, now)
        decision = policy.decisions[-1][1]
        out.append((applied, decision.strategy.value, decision.reason))
        now += INTERVAL
    return out


def first_difference(a: list[Triple], b: list[Triple]) -> str | None:
    for tick, (left, right) in enumerate(zip(a, b, strict=True)):
        if left != right:
            return f"tick {tick} (t+{tick * INTERVAL:.0f}s): operator {left} != simulator {right}"
    return None


@pytest.mark.parametrize("mode", ["Active", "DryRun"])
def test_operator_and_simulator_decide_the_same(mode: str) -> None:
    moments = timeline()
    operator, simulator = run_operator(moments, mode), run_simulator(moments, mode)
    assert first_difference(operator, simulator) is None
    if mode == "DryRun":
        assert {replicas for replicas, _, _ in operator} == {1}  # recorded, never applied


@pytest.mark.parametrize("mode", ["Active", "DryRun"])
def test_parity_holds_with_the_direct_gateway_read(mode: str) -> None:
    moments = burst_timeline()
    operator = run_operator(moments, mode, direct=True)
    assert first_difference(operator, run_simulator(moments, mode, direct=True)) is None


def test_the_direct_read_sees_the_burst_a_prometheus_read_does_not() -> None:
    """The burst tick: 600 arrivals in 5 s where Prometheus' window still says 2 req/s. Read
    directly, the panic path scales up at that tick; through Prometheus alone nothing moves."""
    moments = burst_timeline()
    burst = len(timeline())
    direct, windowed = run_operator(moments, direct=True), run_operator(moments)
    assert windowed[burst][0] == windowed[burst - 1][0]
    assert direct[burst][0] > direct[burst - 1][0]
    assert direct[burst][2] == "PanicMode"


def test_the_direct_read_adds_replicas_for_a_burst_while_prometheus_is_down() -> None:
    """Prometheus down while 600 arrivals come in 5 s: read directly, the gateway's counts add
    replicas (never remove any: the quiet outage ticks after the burst hold); through Prometheus
    alone the outage only holds."""
    moments = burst_timeline()
    outage = len(moments) - 5
    direct, windowed = run_operator(moments, direct=True), run_operator(moments)
    assert {count for count, _, _ in windowed[outage - 1 :]} == {windowed[outage - 1][0]}
    assert windowed[outage][2] == "MetricsUnavailable"
    assert direct[outage][0] > direct[outage - 1][0] and direct[outage][2] == "LoadAboveCapacity"
    peak = direct[outage + 1][0]
    assert [count for count, _, _ in direct[outage + 2 :]] == [peak] * 3
    assert [reason for _, _, reason in direct[outage + 2 :]] == ["MetricsUnavailable"] * 3


def test_the_timeline_visits_every_branch() -> None:
    """The reasons a step between gather and apply would change must all occur (hand-checked
    against the timeline: 90 req/s of 1000/200 tokens needs ~3-4 H100 replicas)."""
    triples = run_operator(timeline())
    reasons = [reason for _, _, reason in triples]
    replicas = [count for count, _, _ in triples]
    assert max(replicas) >= 3  # scale-up under load
    assert "MetricsUnavailable" in reasons  # the outage holds
    held = reasons.index("MetricsUnavailable")
    assert replicas[held] == replicas[held - 1]
    # The guard: 20 s of proven idleness are complete at the first tick without gateway series
    # (tick 4 + 8 + 3 + 2 + 3 + 4 = 24), so zero is due, but one replica stays.
    guarded = timeline().index(Moment(gateway_series_missing=True))
    assert guarded == 24
    assert replicas[guarded - 1] > 1 and triples[guarded] == (1, "ScaleToZero", "IdleNotProven")
    assert "IdleProven" in reasons[guarded:] and replicas[-10] == 0  # proof again -> zero
    wake = reasons.index("ActivationRequested")
    assert replicas[wake - 1] == 0 and replicas[wake] == 1  # the gateway's signal wakes
    assert reasons[wake + 1] == "Waking"


@contextmanager
def patched(module: Any, name: str, wrapper: Callable[[Decision], Decision]) -> Iterator[None]:
    original = getattr(module, name)

    def stepped(*args: Any) -> Decision:
        return wrapper(original(*args))

    setattr(module, name, stepped)
    try:
        yield
    finally:
        setattr(module, name, original)


def never_zero(decision: Decision) -> Decision:
    """A plausible 'safety' step someone might add after `decide` on one side only."""
    return dataclasses.replace(decision, desired_replicas=max(1, decision.desired_replicas))


def test_a_step_added_to_one_side_breaks_parity() -> None:
    moments = timeline()
    with patched(autoscale_loop, "decide", never_zero):
        operator = run_operator(moments)
    assert first_difference(operator, run_simulator(moments)) is not None
    with patched(llmscale_policy, "decide", never_zero):
        simulator = run_simulator(moments)
    assert first_difference(run_operator(moments), simulator) is not None

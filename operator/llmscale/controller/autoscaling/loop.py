"""The scaling loop: gather -> decide -> apply for every LLMDeployment, one tick at a time.

Per tick: ONE Prometheus read (one query per signal for all deployments, `MetricsSource`),
ONE list of Deployments and ONE list of pods (`AutoscaleCluster.list_workloads`), shared by all
deployments as a `ClusterSnapshot` (`read_cluster`); then for each LLMDeployment with a
loop-owned strategy: inputs (`gather.build_inputs`) ->
`llmscale.scaling.decide` -> apply `Decision.replicas_to_apply` verbatim -> Events, status,
/metrics. Nothing between gather and apply is decided here: the idle guard, waking from zero and
DryRun are inside `decide` (the simulator runs the same; tests/unit/parity keeps them equal).
In the operator each LLMDeployment has a kopf daemon (controller/autoscaling/handlers.py) that
runs `serve`: a decision on every tick boundary (wall-clock multiples of the interval, so all
daemons of a tick wake together and share one snapshot) or at once when `activate` hands it the
gateway's signal. `tick` decides for every tracked deployment in one go (tests, benchmarks, the
parity test with the simulator): the same `_one` per deployment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from llmscale.controller.autoscaling import gather
from llmscale.controller.autoscaling.memory import LoopMemory
from llmscale.controller.autoscaling.operator_metrics import OperatorMetrics
from llmscale.controller.autoscaling.policy import LOOP_OWNED, policy_for
from llmscale.controller.autoscaling.settings import AutoscalerSettings
from llmscale.errors import LLMScaleError, MetricsUnavailableError
from llmscale.metrics import DemandHistory, DeploymentKey, DeploymentMetrics, MetricsSource
from llmscale.metrics.types import GatewayReader
from llmscale.scaling import Decision, ScalingPolicy, decide, forecast, reasons
from llmscale.timestamps import parse_rfc3339, rfc3339

log = logging.getLogger(__name__)

ACTIVATION_ANNOTATION = "llmscale.dev/activation-requested-at"
ACTIVATION_FRESH_SECONDS = 60.0
"""An activation annotation older than this (e.g. seen again after an operator restart) is stale."""
ACTIVATION_HOLD_SECONDS = 120.0
"""After an activation, ticks tell the core `activation_requested` this long (or until Ready)."""
YIELD_EVERY = 50
"""Give the event loop (kopf's watches) a turn every this many deployments."""
HISTORY_SECONDS = 3 * 86_400.0
"""Demand history read from Prometheus at start to seed the time-of-day profile of deployments
that have no saved scaler state (new ones, or a status that was lost)."""
HISTORY_STEP_SECONDS = 60.0
HISTORY_RETRY_SECONDS = 600.0


class AutoscaleCluster(Protocol):
    """The loop's door to the API server (KubeAutoscaleCluster; a fake in tests)."""

    async def list_workloads(self) -> dict[DeploymentKey, gather.WorkloadSnapshot]: ...
    async def get_replicas(self, namespace: str, name: str) -> int | None: ...
    async def scale(self, namespace: str, name: str, replicas: int) -> None: ...
    async def wake(self, namespace: str, name: str, replicas: int) -> None: ...
    async def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], conditions: list[dict[str, Any]] | None
    ) -> None: ...
    async def post_event(
        self, namespace: str, name: str, uid: str | None, type_: str, reason: str, message: str
    ) -> None: ...
    async def set_deletion_costs(self, namespace: str, pods: tuple[dict[str, Any], ...]) -> None: ...


@dataclass
class Tracked:
    namespace: str
    name: str
    body: dict[str, Any]
    memory: LoopMemory | None = None
    last_status_write: float | None = None
    conditions: dict[str, tuple[bool, str]] = field(default_factory=dict)
    activation_seen: str | None = None
    activation_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by `activate`: `serve` decides at once instead of at the next tick boundary."""
    cached_policy: ScalingPolicy | None = None
    """Rebuilt only when the watch delivers a new body (`Autoscaler.observe` clears it)."""

    def policy(self, settings: AutoscalerSettings) -> ScalingPolicy:
        if self.cached_policy is None:
            self.cached_policy = policy_for(self.body, settings)
        return self.cached_policy

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.body.get("spec") or {})

    @property
    def scaling(self) -> dict[str, Any]:
        return dict(self.spec.get("scaling") or {})

    @property
    def loop_owned(self) -> bool:
        return str(self.scaling.get("strategy") or "Auto") in LOOP_OWNED


@dataclass(frozen=True)
class ClusterSnapshot:
    """One tick's batched reads, shared by every deployment's decision in that tick."""

    taken_at: float
    metrics: dict[DeploymentKey, DeploymentMetrics]
    workloads: dict[DeploymentKey, gather.WorkloadSnapshot]
    prometheus_ok: bool
    error: str = ""
    prometheus_at: float | None = None
    """When Prometheus was last asked (None: at `taken_at`); the backoff counts from it."""


@dataclass
class TickReport:
    deployments: int = 0
    decided: int = 0
    scaled: int = 0
    prometheus_ok: bool = True
    seconds: float = 0.0


class Autoscaler:
    def __init__(
        self,
        source: MetricsSource,
        cluster: AutoscaleCluster,
        settings: AutoscalerSettings,
        metrics: OperatorMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.cluster = cluster
        self.settings = settings
        self.metrics = metrics or OperatorMetrics()
        self.clock = clock
        self.tracked: dict[DeploymentKey, Tracked] = {}
        self.failures = 0
        self.history: dict[DeploymentKey, DemandHistory] | None = None
        self._history_task: asyncio.Task[None] | None = None
        self._history_next_attempt = 0.0
        self._snapshot: ClusterSnapshot | None = None
        self._snapshot_lock = asyncio.Lock()
        self.closed = False
        """Set by `close` (the operator is stopping): `serve` returns, no new decision starts."""

    # --- registry (fed by the kopf watch) ---------------------------------------------------

    def observe(self, body: dict[str, Any]) -> Tracked:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta["name"]))
        tracked = self.tracked.get(key)
        if tracked is None or (tracked.body.get("metadata") or {}).get("uid") != meta.get("uid"):
            tracked = Tracked(namespace=key[0], name=key[1], body=body)
            self.tracked[key] = tracked
        version = meta.get("resourceVersion")
        if version is not None and version == (tracked.body.get("metadata") or {}).get("resourceVersion"):
            return tracked  # the same object again (a daemon's tick): keep the parsed policy
        tracked.body = body
        tracked.cached_policy = None
        return tracked

    def forget(self, namespace: str, name: str) -> None:
        self.tracked.pop((namespace, name), None)
        self.metrics.forget(namespace, name)

    def _memory(self, tracked: Tracked) -> LoopMemory:
        if tracked.memory is None:
            tracked.memory = LoopMemory.from_status(tracked.body.get("status"))
        return tracked.memory

    # --- the ticker ---------------------------------------------------------------------------

    async def serve(
        self, key: DeploymentKey, body: Callable[[], dict[str, Any]], stop: asyncio.Event
    ) -> None:
        """Scale one LLMDeployment until `stop` is set (a kopf daemon's life).

        Decides on every tick boundary, or at once after `activate`. `body()` returns the object
        as the watch last delivered it. Whatever ends the serving (deletion, the operator
        stopping, a peer taking over), the in-memory state is dropped: it is rebuilt from the
        object's status when serving starts again, so it never goes stale.
        """
        self.metrics.served.inc()
        try:
            while not stop.is_set() and not self.closed:
                tracked = self.observe(body())
                woken = tracked.wake.is_set()
                tracked.wake.clear()
                await self.tick_one(key, fresh=woken)
                await self._until_next_tick(tracked, stop)
        finally:
            self.metrics.served.dec()
            self.forget(*key)

    def close(self) -> None:
        """The operator is stopping: serving ends at the next check (kopf may still start a
        daemon for an object it processes during shutdown; that one returns at once)."""
        self.closed = True

    def seconds_to_next_tick(self) -> float:
        """Until the next wall-clock multiple of the interval: every deployment ticks together."""
        interval = self.settings.interval_seconds
        return interval - (self.clock() % interval)

    async def _until_next_tick(self, tracked: Tracked, stop: asyncio.Event) -> None:
        waits = {asyncio.ensure_future(tracked.wake.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(
                waits, timeout=self.seconds_to_next_tick(), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiting in waits:
                waiting.cancel()

    async def read_cluster(self, *, fresh: bool = False) -> ClusterSnapshot:
        """This tick's metrics and workloads: read once, then shared until the next tick.

        A snapshot younger than half an interval is reused (the daemons of one tick wake within
        moments of each other). While Prometheus is down it is not asked again before the
        backoff (interval x 2^failures, capped) has passed, so it is not hammered; the cluster
        and, with a direct gateway read (`GatewayReader`), the gateways are still read every
        tick, so a burst still adds replicas (never removes any) during the outage. `fresh`
        forces a new read (an activation, `tick`).
        """
        async with self._snapshot_lock:
            now = self.clock()
            cached = self._snapshot
            interval = self.settings.interval_seconds
            if cached is not None and not fresh:
                if now - cached.taken_at < interval / 2:
                    return cached
                asked = cached.taken_at if cached.prometheus_at is None else cached.prometheus_at
                if not cached.prometheus_ok and now - asked < self._snapshot_ttl(cached):
                    # Prometheus in its backoff: the cluster and the gateways only
                    self._snapshot = ClusterSnapshot(
                        now,
                        await self._gateway_only(now),
                        await self.cluster.list_workloads(),
                        False,
                        cached.error,
                        prometheus_at=asked,
                    )
                    return self._snapshot
            metrics: dict[DeploymentKey, DeploymentMetrics] = {}
            prometheus_ok, error = True, ""
            try:
                metrics = await self.source.fetch_current(now)
                self.failures = 0
            except MetricsUnavailableError as exc:
                prometheus_ok, error = False, str(exc)
                self.failures += 1
                log.warning("metrics unavailable (attempt %d): %s", self.failures, exc)
                metrics = await self._gateway_only(now)
            self.metrics.metrics_available.set(1 if prometheus_ok else 0)
            workloads = await self.cluster.list_workloads()
            self._snapshot = ClusterSnapshot(now, metrics, workloads, prometheus_ok, error)
            return self._snapshot

    async def _gateway_only(self, now: float) -> dict[DeploymentKey, DeploymentMetrics]:
        """The gateways' own signals while Prometheus does not answer ({} without a direct read)."""
        if isinstance(self.source, GatewayReader):
            return await self.source.fetch_gateway_only(now)
        return {}

    def _snapshot_ttl(self, snapshot: ClusterSnapshot) -> float:
        interval = self.settings.interval_seconds
        if snapshot.prometheus_ok:
            return interval / 2
        backoff = min(self.settings.max_backoff_seconds, interval * 2.0 ** min(self.failures, 6))
        return max(interval / 2, backoff - interval / 2)

    def _maybe_load_history(self, now: float) -> None:
        if self.history is None and self._history_task is None and now >= self._history_next_attempt:
            self._history_task = asyncio.create_task(self._load_history(now), name="llmscale-demand-history")

    async def _load_history(self, now: float) -> None:
        """Off the tick's path: range queries over days can take seconds."""
        try:
            self.history = await self.source.fetch_history(now - HISTORY_SECONDS, now, HISTORY_STEP_SECONDS)
            log.info("demand history loaded for %d deployment(s)", len(self.history))
        except (MetricsUnavailableError, ValueError) as exc:
            log.warning("demand history unavailable (retry in %.0fs): %s", HISTORY_RETRY_SECONDS, exc)
            self._history_next_attempt = self.clock() + HISTORY_RETRY_SECONDS
        finally:
            self._history_task = None

    def _seed(self, tracked: Tracked, memory: LoopMemory, policy: ScalingPolicy) -> None:
        """Seed a fresh deployment's time-of-day profile from Prometheus history (once)."""
        memory.needs_seed = False
        history = (self.history or {}).get((tracked.namespace, tracked.name))
        if history is None:
            return
        samples = history_load(history, policy)
        used = forecast.seed_profile(memory.state.forecast, policy, samples)
        log.info(
            "%s/%s: time-of-day profile seeded from %d history points", tracked.namespace, tracked.name, used
        )

    async def tick(self) -> TickReport:
        """Decide for every tracked deployment now, on one fresh snapshot."""
        started = time.perf_counter()
        now = self.clock()
        self._maybe_load_history(now)
        snapshot = await self.read_cluster(fresh=True)
        report = TickReport(deployments=len(self.tracked), prometheus_ok=snapshot.prometheus_ok)
        for index, key in enumerate(list(self.tracked)):
            if index and index % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            outcome = await self._decide(key, snapshot, now)
            if outcome is not None:
                report.decided += 1
                report.scaled += int(outcome)
        report.seconds = time.perf_counter() - started
        self.metrics.tick.observe(report.seconds)
        return report

    async def tick_one(self, key: DeploymentKey, *, fresh: bool = False) -> bool | None:
        """Decide for one deployment on this tick's shared snapshot: scaled?, None if not decided."""
        now = self.clock()
        self._maybe_load_history(now)
        snapshot = await self.read_cluster(fresh=fresh)
        return await self._decide(key, snapshot, now)

    async def _decide(self, key: DeploymentKey, snapshot: ClusterSnapshot, now: float) -> bool | None:
        tracked = self.tracked.get(key)
        workload = snapshot.workloads.get(key)
        if tracked is None or workload is None:
            return None  # gone, or no Deployment yet (reconcile creates it)
        try:
            async with tracked.lock:
                applied = self._memory(tracked).applied
                if applied is not None and snapshot.taken_at <= applied[0]:
                    # this snapshot predates our own last scale (the activation's urgent tick
                    # and the regular one share snapshots): the Deployment already has it
                    workload = replace(workload, replicas=applied[1])
                return await self._one(
                    tracked, workload, snapshot.metrics.get(key), snapshot.prometheus_ok, snapshot.error, now
                )
        except LLMScaleError as exc:
            log.warning("scaling %s/%s failed: %s", key[0], key[1], exc)
            return None

    async def _one(
        self,
        tracked: Tracked,
        workload: gather.WorkloadSnapshot,
        metrics: DeploymentMetrics | None,
        prometheus_ok: bool,
        error: str,
        now: float,
    ) -> bool:
        memory = self._memory(tracked)
        ns, name = tracked.namespace, tracked.name
        self.metrics.evaluations.labels(ns, name).inc()
        policy = tracked.policy(self.settings)
        if memory.needs_seed and self.history is not None:
            self._seed(tracked, memory, policy)
        memory.cold_start.observe(workload.pods)
        activation = now < tracked.activation_until and workload.ready_replicas == 0
        inputs = gather.build_inputs(
            metrics,
            workload,
            prometheus_ok=prometheus_ok,
            cold_start_p50_seconds=memory.cold_start.p50_seconds,
            cold_start_p95_seconds=memory.cold_start.p95_seconds,
            activation_requested=activation,
        )
        memory.cost.observe(
            now,
            workload.replicas,
            policy.gpus_per_replica,
            policy.max_replicas,
            policy.gpu_price_per_hour_usd,
        )
        if inputs.metrics_available and metrics is not None:
            memory.slo.observe(
                max(inputs.request_rate_rps, 0.0) * self.settings.interval_seconds,
                metrics.ttft_p95_seconds,
                metrics.itl_p95_seconds,
                policy.slo_ttft_p95_seconds,
                policy.slo_itl_p95_seconds,
            )
        usable, m_reason, m_message = gather.metrics_usable(metrics, workload.ready_replicas)
        if not prometheus_ok:
            usable, m_reason, m_message = False, "PrometheusUnavailable", error or "Prometheus unavailable"
        if not tracked.loop_owned:
            await self._write_status(
                tracked, memory, None, inputs, metrics, workload, now, (usable, m_reason, m_message), None
            )
            return False

        decision = decide(inputs, policy, memory.state, now)
        memory.state = decision.next_state
        desired, reason, message = decision.desired_replicas, decision.reason, decision.message
        current = workload.replicas
        target = decision.replicas_to_apply(current)
        changed = desired != current
        scaled = False
        if target != current:
            if desired < current:
                await self._prefer_idlest(ns, workload)
            if current == 0:
                # From zero, the fast path (the Deployment's /scale at once, then reconcile).
                await self.cluster.wake(ns, name, target)
            else:
                await self.cluster.scale(ns, name, target)
            scaled = True
            memory.applied = (self.clock(), target)
            if desired > current:
                memory.scale_ups += 1
            else:
                memory.scale_downs += 1
            self.metrics.decisions.labels(ns, name, reason).inc()
            verb = "Scaled up" if desired > current else "Scaled down"
            await self._event(tracked, "Normal", reason, f"{verb} from {current} to {desired}: {message}")
        elif changed and decision.dry_run and memory.last_desired != desired:
            await self._event(
                tracked, "Normal", reason, f"DryRun: would scale from {current} to {desired}: {message}"
            )
        if changed or reason != memory.last_reason:
            memory.record(
                {
                    "time": rfc3339(now),
                    "replicas": current,
                    "desiredReplicas": desired,
                    "strategy": decision.strategy.value,
                    "reason": reason,
                    "message": message[:500],
                }
            )
        urgent = changed or reason != memory.last_reason or desired != memory.last_desired
        memory.last_reason, memory.last_desired = reason, desired
        memory.last_strategy = decision.strategy.value
        scaling_active = (
            not decision.dry_run and decision.valid,
            "DryRun" if decision.dry_run else (reason if decision.valid else reasons.METRICS_UNAVAILABLE),
            "mode DryRun: decisions are recorded, not applied" if decision.dry_run else message,
        )
        self._export(tracked, decision, desired, workload, metrics, memory)
        await self._write_status(
            tracked,
            memory,
            decision,
            inputs,
            metrics,
            workload,
            now,
            (usable, m_reason, m_message),
            (desired, scaling_active),
            urgent=urgent,
        )
        return scaled

    async def _prefer_idlest(self, namespace: str, workload: gather.WorkloadSnapshot) -> None:
        try:
            await self.cluster.set_deletion_costs(namespace, workload.pods)
        except LLMScaleError as exc:
            # Scale-down still drains gracefully (preStop + grace period); only the choice is worse.
            log.warning("could not set pod deletion costs in %s: %s", namespace, exc)

    async def _event(self, tracked: Tracked, type_: str, reason: str, message: str) -> None:
        uid = (tracked.body.get("metadata") or {}).get("uid")
        try:
            await self.cluster.post_event(tracked.namespace, tracked.name, uid, type_, reason, message)
        except LLMScaleError as exc:
            log.warning("event for %s/%s not posted: %s", tracked.namespace, tracked.name, exc)

    def _export(
        self,
        tracked: Tracked,
        decision: Decision,
        desired: int,
        workload: gather.WorkloadSnapshot,
        metrics: DeploymentMetrics | None,
        memory: LoopMemory,
    ) -> None:
        ns, name, m = tracked.namespace, tracked.name, self.metrics
        m.desired.labels(ns, name).set(desired)
        m.ready.labels(ns, name).set(workload.ready_replicas)
        m.current.labels(ns, name).set(workload.replicas)
        m.set_strategy(ns, name, decision.strategy.value, decision.strategy_reason or "")
        if metrics is not None and metrics.ttft_p95_seconds is not None:
            m.ttft.labels(ns, name).set(metrics.ttft_p95_seconds)
        if metrics is not None and metrics.itl_p95_seconds is not None:
            m.itl.labels(ns, name).set(metrics.itl_p95_seconds)
        m.gpu_hours.labels(ns, name).set(memory.cost.gpu_hours)

    async def _write_status(
        self,
        tracked: Tracked,
        memory: LoopMemory,
        decision: Decision | None,
        inputs: Any,
        metrics: DeploymentMetrics | None,
        workload: gather.WorkloadSnapshot,
        now: float,
        metrics_condition: tuple[bool, str, str],
        scaling: tuple[int, tuple[bool, str, str]] | None,
        urgent: bool = False,
    ) -> None:
        generation = (tracked.body.get("metadata") or {}).get("generation")
        wanted = {"MetricsAvailable": metrics_condition}
        if scaling is not None:
            wanted["ScalingActive"] = scaling[1]
        conditions = None
        if any(tracked.conditions.get(t) != (v[0], v[1]) for t, v in wanted.items()):
            conditions = [gather.condition(t, *v, now=now, generation=generation) for t, v in wanted.items()]
            if not metrics_condition[0] and tracked.conditions.get("MetricsAvailable", (True, ""))[0]:
                await self._event(tracked, "Warning", metrics_condition[1], metrics_condition[2])
        due = (
            tracked.last_status_write is None
            or now - tracked.last_status_write >= self.settings.status_interval_seconds
        )
        if not (urgent or due or conditions):
            return
        status: dict[str, Any] = {
            "observed": gather.observed_status(metrics, inputs, memory.slo.attainment),
            "coldStart": memory.cold_start.to_status(),
            "cost": memory.cost.to_status(),
            "scalerState": memory.to_scaler_state(),
        }
        if decision is not None and scaling is not None:
            if not decision.dry_run:
                # reconcile applies status.desiredReplicas (controller/replicas.py): DryRun never writes it.
                status["desiredReplicas"] = scaling[0]
            status["strategy"] = decision.strategy.value
            status["strategyReason"] = decision.strategy_reason or None
            status["lastDecisions"] = memory.decisions
            if decision.forecast is not None:
                status["forecast"] = decision.forecast.to_status()
        await self.cluster.patch_status(tracked.namespace, tracked.name, status, conditions)
        self.metrics.status_writes.labels(tracked.namespace, tracked.name).inc()
        tracked.last_status_write = now
        for t, v in wanted.items():
            tracked.conditions[t] = (v[0], v[1])

    # --- activation (the gateway's signal, delivered to the next decision at once) -------------

    async def activate(self, body: dict[str, Any]) -> bool:
        """React to the gateway's activation annotation: True when it starts a tick at once.

        Gather-side only: a fresh annotation marks the deployment `activation_requested` for
        the following ticks (until a replica is Ready or `ACTIVATION_HOLD_SECONDS` pass) and
        wakes its `serve` now (a fresh snapshot). Waking from zero is then `decide`'s activation machine, like
        every other decision (DryRun included).
        """
        tracked = self.observe(body)
        value = ((body.get("metadata") or {}).get("annotations") or {}).get(ACTIVATION_ANNOTATION)
        if not value or value == tracked.activation_seen:
            return False
        tracked.activation_seen = value
        now = self.clock()
        requested = parse_rfc3339(value)
        if requested is None or now - requested > ACTIVATION_FRESH_SECONDS or not tracked.loop_owned:
            return False
        tracked.activation_until = now + ACTIVATION_HOLD_SECONDS
        tracked.wake.set()
        return True


def history_load(history: DemandHistory, policy: ScalingPolicy) -> list[tuple[float, float]]:
    """(unix time, load in replica-units) per history point, as `decide` measures load.

    Token rates give the load directly (prompt/P + generated/G); where they are missing
    (e.g. at zero replicas) the gateway's arrivals x the work of a default-length request.
    """
    from llmscale.scaling.demand import DEFAULT_GENERATION_TOKENS, DEFAULT_PROMPT_TOKENS, work_per_request

    per_request = work_per_request(policy, DEFAULT_PROMPT_TOKENS, DEFAULT_GENERATION_TOKENS)
    samples: list[tuple[float, float]] = []
    demand = history.demand_rps()
    for index, when in enumerate(history.timestamps_seconds):
        prompt = history.prompt_tokens_per_second[index]
        generated = history.generation_tokens_per_second[index]
        if prompt is not None and generated is not None:
            load = prompt / policy.capacity_prompt_tokens_per_second
            load += generated / policy.capacity_generation_tokens_per_second
            arrivals = history.gateway_arrivals_rps[index]
            if arrivals is not None:
                load = max(load, arrivals * per_request)
        elif demand[index] is not None:
            load = float(demand[index] or 0.0) * per_request
        else:
            continue
        samples.append((when, load))
    return samples

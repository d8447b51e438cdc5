"""Scaling-loop benchmark: one tick over 1000 LLMDeployments, its time and the process memory.

The real loop (`llmscale.controller.autoscaling.loop.Autoscaler`: policy from spec, inputs,
`llmscale.scaling.decide`, idleness guard, status and /metrics bookkeeping) runs against
`FakeMetricsSource` (one snapshot for all deployments, as the Prometheus adapter returns it)
and an in-memory cluster (no API server: the figure is the operator's own CPU per tick; the
API calls are one list of Deployments and one of pods per tick plus one status patch per
deployment whose decision changed). Demand varies per deployment and per tick so decisions
scale up and down.

Baseline in the same process: the bare `decide` calls alone, to show the loop's overhead.
Targets (issue 6): tick p99 < 2 s, RSS < 300 MB. Exit 1 when one fails. About 30-60 s.
`--smoke`: 50 deployments, 3 ticks, targets not judged (benchmarks/benchkit.py).
"""

from __future__ import annotations

import asyncio
import gc
import math
import random
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit" / "autoscaler"))

from autoscaler_testkit import Clock, FakeCluster, llmdeployment

from benchkit import SMOKE, verdict
from llmscale.controller.autoscaling.loop import Autoscaler
from llmscale.controller.autoscaling.policy import policy_for
from llmscale.controller.autoscaling.settings import AutoscalerSettings
from llmscale.scaling import DecisionInputs, ScalerState, decide
from llmscale_tools.fakes.metrics import FakeMetricsSource

DEPLOYMENTS = 50 if SMOKE else 1000
TICKS = 3 if SMOKE else 20
TICK_P99_TARGET_SECONDS = 2.0
RSS_TARGET_MB = 300.0
STRATEGIES = ("Autoscaled", "ScaleToZero", "Auto", "Warm")
GPUS = ("H100-80GB", "A100-80GB", "L4")


def rss_mb() -> float:
    # ru_maxrss is KiB on Linux: the peak, which is what a memory limit has to cover.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def demand(index: int, tick: int) -> float:
    phase = (index % 17) / 17.0
    return max(0.0, 20.0 * math.sin(2 * math.pi * (tick / TICKS + phase))) * (index % 5) / 4.0


def main() -> int:
    rng = random.Random(7)
    source = FakeMetricsSource()
    cluster = FakeCluster()
    clock = Clock()
    settings = AutoscalerSettings(metrics_port=None, interval_seconds=5.0)
    loop = Autoscaler(source, cluster, settings, clock=clock)
    for i in range(DEPLOYMENTS):
        name = f"d{i:04d}"
        body = llmdeployment(name=name, namespace=f"ns{i % 20}", strategy=STRATEGIES[i % 4], max_replicas=8)
        body["spec"]["resources"]["gpu"]["product"] = GPUS[i % 3]
        loop.observe(body)
        cluster.set_workload(f"ns{i % 20}", name, 1 + rng.randrange(3))
    tick_seconds: list[float] = []

    async def run() -> None:
        for tick in range(TICKS):
            for i in range(DEPLOYMENTS):
                rps = demand(i, tick)
                source.set_complete(
                    f"ns{i % 20}", f"d{i:04d}",
                    request_rate_rps=rps, prompt_tokens_per_second=rps * 1000,
                    generation_tokens_per_second=rps * 200, num_requests_running=rps,
                    gateway_arrivals_rps=rps, ttft_p95_seconds=0.3 if rps else None,
                )  # fmt: skip
            # every deployment's pods become Ready between ticks
            for key, workload in list(cluster.workloads.items()):
                cluster.set_workload(key[0], key[1], workload.replicas, workload.replicas)
            report = await loop.tick()
            tick_seconds.append(report.seconds)
            clock.advance(settings.interval_seconds)

    gc.collect()
    started = time.perf_counter()
    asyncio.run(run())
    total = time.perf_counter() - started

    # Baseline: decide() alone for the same number of calls.
    policies = [policy_for(t.body, settings) for t in loop.tracked.values()]
    states: list[Any] = [ScalerState() for _ in policies]
    base_started = time.perf_counter()
    for tick in range(5):
        for i, policy in enumerate(policies):
            rps = demand(i, tick)
            inputs = DecisionInputs(
                current_replicas=2,
                ready_replicas=2,
                request_rate_rps=rps,
                prompt_tokens_per_second=rps * 1000,
                generation_tokens_per_second=rps * 200,
                gateway_arrivals_rps=rps,
            )
            states[i] = decide(inputs, policy, states[i], 1_800_000_000.0 + tick * 5).next_state
    decide_only = (time.perf_counter() - base_started) / 5

    ordered = sorted(tick_seconds)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    memory = rss_mb()
    scaled = len(cluster.scale_calls)
    print(f"deployments                  {DEPLOYMENTS}")
    print(f"ticks                        {TICKS} (total {total:.1f} s)")
    print(f"tick p50 / p99 / max         {p50:.3f} / {p99:.3f} / {ordered[-1]:.3f} s")
    print(f"baseline decide() only       {decide_only:.3f} s per {DEPLOYMENTS} decisions")
    print(f"loop overhead vs decide()    x{p50 / decide_only:.2f}")
    print(f"scale calls                  {scaled} ({scaled / TICKS:.1f} per tick)")
    print(f"status patches               {len(cluster.status)} deployments written")
    print(f"peak RSS                     {memory:.0f} MB")
    failed = []
    if p99 >= TICK_P99_TARGET_SECONDS:
        failed.append(f"tick p99 {p99:.3f} s >= {TICK_P99_TARGET_SECONDS} s")
    if memory >= RSS_TARGET_MB:
        failed.append(f"RSS {memory:.0f} MB >= {RSS_TARGET_MB:.0f} MB")
    print("targets: tick p99 < 2 s, RSS < 300 MB:", "FAIL" if failed else "ok")
    broken = [] if scaled else ["no scale call in any tick: the loop did not act on the demand"]
    return verdict(failed, broken)


if __name__ == "__main__":
    sys.exit(main())

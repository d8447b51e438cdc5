"""Baselines behave as documented (timelines stepped explicitly) and the registry."""

from __future__ import annotations

import pytest

from llmscale.errors import UserInputError
from llmscale.sim.perfmodel import ReplicaPerformanceModel
from llmscale.sim.policies import POLICY_NAMES, get_policy
from llmscale.sim.policies.hpa import HPAPolicy, KEDAPolicy
from llmscale.sim.policies.kpa import KPAPolicy
from llmscale.sim.policy import FleetObservation, SimContext


def _context() -> SimContext:
    model = ReplicaPerformanceModel.for_deployment("llama-3-8b", "H100-80GB")
    return SimContext(
        model=model, slo_ttft_p95_seconds=1.0, slo_itl_p95_seconds=None, slo_objective=0.99,
        cold_start_seconds=45.0, gpu_price_per_hour_usd=4.0, min_replicas=0, max_replicas=64,
        replica_capacity_rps=30.0, mean_input_tokens=202, mean_output_tokens=179,
    )  # fmt: skip


def _obs(now: float, replicas: int, *, running: float = 0.0, waiting: float = 0.0, arrivals: int = 0,
         queue: int = 0, available: bool = True) -> FleetObservation:  # fmt: skip
    return FleetObservation(
        now=now,
        current_replicas=replicas,
        ready_replicas=replicas,
        request_rate_rps=0.0,
        prompt_tokens_rate=0.0,
        generation_tokens_rate=0.0,
        num_requests_waiting=waiting,
        num_requests_running=running,
        kv_cache_usage=0.0,
        ttft_p95_seconds=None,
        itl_p95_seconds=None,
        gateway_arrivals_rps=float(arrivals),
        gateway_queue_depth=queue,
        metrics_available=available,
        cold_start_p50_seconds=None,
        cold_start_p95_seconds=None,
        gateway_arrivals_last_tick=arrivals,
        gateway_queue_now=queue,
    )


def test_hpa_scales_down_only_after_the_300s_window() -> None:
    hpa = HPAPolicy(target_running_per_replica=50.0)
    hpa.prepare(_context())
    assert hpa.decide(_obs(0, 4, running=200)) == 4  # at target
    replicas = 4
    decisions = []
    for tick in range(1, 25):  # load drops to a quarter; six minutes pass
        now = tick * 15.0
        replicas = hpa.decide(_obs(now, replicas, running=50))
        decisions.append((now, replicas))
    assert all(r == 4 for now, r in decisions if now < 300)
    assert next(r for now, r in decisions if now >= 300) == 1


def test_hpa_tolerance_and_scale_up_rate_limit() -> None:
    hpa = HPAPolicy(target_running_per_replica=50.0)
    hpa.prepare(_context())
    assert hpa.decide(_obs(0, 2, running=108)) == 2  # ratio 1.08 is inside the 0.1 tolerance
    assert hpa.decide(_obs(15, 2, running=1000)) == 6  # max(+100 %, +4 pods) = 6
    assert hpa.decide(_obs(30, 6, running=3000)) == 12  # +100 % of 6
    assert hpa.decide(_obs(45, 12, running=0, available=False)) == 12  # no metrics: keep


def test_keda_activates_from_the_gateway_and_cools_down_to_zero() -> None:
    keda = KEDAPolicy()
    keda.prepare(_context())
    assert keda.decide(_obs(0, 0)) == 0
    assert keda.decide(_obs(30, 0, queue=3, arrivals=3, available=False)) == 1
    assert keda.decide(_obs(60, 1, running=10, arrivals=20)) == 1
    assert keda.decide(_obs(75, 1, running=10, waiting=30, arrivals=20)) == 5  # ceil(30 / 5) within +4
    replicas = 5
    for tick in range(6, 60):  # traffic stops at t=90
        now = tick * 15.0
        replicas = keda.decide(_obs(now, replicas))
        if now < 90 + 300:
            assert replicas >= 1
    assert replicas == 0


def test_kpa_panics_on_a_burst_and_does_not_scale_down_in_panic() -> None:
    kpa = KPAPolicy(target_concurrency=100.0)
    kpa.prepare(_context())
    replicas = 1
    for tick in range(30):  # steady 50 concurrent: under the 70 target
        replicas = kpa.decide(_obs(tick * 2.0, replicas, running=50))
    assert replicas == 1
    replicas = kpa.decide(_obs(60.0, replicas, running=50, waiting=1400))  # burst: 6 s average ~ 480
    assert replicas >= 3
    peak = replicas
    for tick in range(31, 50):  # burst gone, still inside the panic window: no scale down
        replicas = kpa.decide(_obs(tick * 2.0, replicas, running=20))
        assert replicas >= peak


def test_kpa_scales_to_zero_after_stable_window_and_grace() -> None:
    kpa = KPAPolicy(target_concurrency=100.0)
    kpa.prepare(_context())
    replicas = 1
    zero_at = None
    for tick in range(100):
        replicas = kpa.decide(_obs(tick * 2.0, replicas, running=0))
        if replicas == 0 and zero_at is None:
            zero_at = tick * 2.0
    assert zero_at is not None and zero_at >= 30
    assert kpa.decide(_obs(300, 0, queue=1, arrivals=1, available=False)) == 1


def test_registry_names_and_errors() -> None:
    assert POLICY_NAMES == (
        "llmscale", "hpa", "keda", "kpa", "warm", "oracle", "hpa-tuned", "keda-tuned", "kpa-tuned",
    )  # fmt: skip
    assert get_policy("HPA").name == "hpa"
    assert get_policy("hpa", tolerance=0.2).tolerance == 0.2  # type: ignore[attr-defined]
    with pytest.raises(UserInputError, match="expected one of llmscale, hpa"):
        get_policy("vpa")
    with pytest.raises(UserInputError, match="parameter 'bogus'"):
        get_policy("kpa", bogus=1)

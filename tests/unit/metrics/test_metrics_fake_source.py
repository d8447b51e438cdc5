"""The fake MetricsSource other engineers' tests use, and the DeploymentMetrics semantics."""

from __future__ import annotations

import asyncio

import pytest

from llmscale.errors import MetricsUnavailableError
from llmscale.metrics.types import SIGNAL_NAMES, DemandHistory, DeploymentMetrics, MetricsSource
from llmscale_tools.fakes.metrics import FakeMetricsSource


def test_fake_satisfies_the_protocol_and_records_explicit_times() -> None:
    fake = FakeMetricsSource()
    assert isinstance(fake, MetricsSource)
    fake.set("ns", "m", request_rate_rps=4.0, ttft_p95_seconds=0.2)
    snapshot = asyncio.run(fake.fetch_current(123.0))
    metrics = snapshot[("ns", "m")]
    assert metrics.request_rate_rps == 4.0 and metrics.ttft_p95_seconds == 0.2
    assert "request_rate_rps" not in metrics.missing
    assert "num_requests_waiting" in metrics.missing
    assert fake.current_calls == [123.0]


def test_fake_outage_and_recovery() -> None:
    fake = FakeMetricsSource()
    fake.set_idle("ns", "m")
    fake.fail()
    with pytest.raises(MetricsUnavailableError):
        asyncio.run(fake.fetch_current(1.0))
    fake.recover()
    assert asyncio.run(fake.fetch_current(2.0))[("ns", "m")].proves_idle


def test_fake_rejects_unknown_signal_names() -> None:
    with pytest.raises(ValueError, match="ttft_p99"):
        FakeMetricsSource().set("ns", "m", ttft_p99=1.0)


def test_idleness_requires_every_demand_signal_present_and_zero() -> None:
    assert not DeploymentMetrics.empty("ns", "m").proves_idle
    fake = FakeMetricsSource()
    assert fake.set_complete("ns", "m").proves_idle
    assert not fake.set("ns", "m", gateway_queue_depth=1.0).proves_idle
    assert not fake.set_complete("ns", "m", gateway_arrivals_rps=0.1).proves_idle
    complete = fake.set_complete("ns", "m")
    assert complete.missing == frozenset()
    assert set(SIGNAL_NAMES) == DeploymentMetrics.empty("ns", "m").missing


def test_history_prefers_gateway_arrivals() -> None:
    history = DemandHistory(
        namespace="ns",
        name="m",
        step_seconds=60,
        timestamps_seconds=(0.0, 60.0),
        request_rate_rps=(1.0, 1.0),
        prompt_tokens_per_second=(None, None),
        generation_tokens_per_second=(None, None),
        gateway_arrivals_rps=(None, 3.0),
    )
    fake = FakeMetricsSource()
    fake.set_history(history)
    assert asyncio.run(fake.fetch_history(0, 60, 60))[("ns", "m")].demand_rps() == (1.0, 3.0)

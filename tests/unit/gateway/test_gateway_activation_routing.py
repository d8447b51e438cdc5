"""Activation throttling (at most 1/s per deployment) and least-outstanding selection, stepped by hand."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from llmscale.gateway.activation import ActivationThrottle
from llmscale.gateway.routing import DeploymentRoute, Endpoint, RoutingTable
from llmscale.timestamps import rfc3339
from llmscale_tools.fakes.gateway import FakeActivationSignaller

KEY = ("ns", "m")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_at_most_one_signal_per_second_per_deployment() -> None:
    async def main() -> FakeActivationSignaller:
        signaller, clock = FakeActivationSignaller(), Clock()
        throttle = ActivationThrottle(signaller, monotonic=clock)
        sent = [throttle.request(KEY) for _ in range(50)]  # a burst of held requests
        assert sent.count(True) == 1
        assert throttle.request(("ns", "other"))  # another deployment is independent
        clock.now += 0.5
        assert not throttle.request(KEY)
        clock.now += 0.5
        assert throttle.request(KEY)
        # the refresh interval (5 s) applies to repeats while requests stay held
        clock.now += 2.0
        assert not throttle.request(KEY, 5.0)
        clock.now += 3.0
        assert throttle.request(KEY, 5.0)
        await asyncio.sleep(0)
        await throttle.close()
        return signaller

    signaller = asyncio.run(main())
    assert [(ns, name) for ns, name, _at, _t in signaller.calls] == [KEY, ("ns", "other"), KEY, KEY]


def test_a_failed_signal_is_retried_by_the_next_request() -> None:
    async def main() -> None:
        signaller, clock = FakeActivationSignaller(), Clock()
        signaller.fail_next = 1
        throttle = ActivationThrottle(signaller, monotonic=clock)
        assert throttle.request(KEY)
        await asyncio.sleep(0)  # the PATCH runs (and fails) in the background
        assert throttle.failed == 1
        assert throttle.request(KEY)  # no 1 s wait after a failure
        await asyncio.sleep(0)
        assert throttle.sent == 1
        await throttle.close()

    asyncio.run(main())


def test_rfc3339_is_utc_with_z() -> None:
    assert rfc3339(datetime(2026, 11, 22, 16, 5, 9, 123, tzinfo=UTC)) == "2026-11-22T16:05:09Z"


def test_least_outstanding_with_round_robin_ties_and_release() -> None:
    async def main() -> None:
        table = RoutingTable()
        a, b, c = Endpoint("10.0.0.1", 8000), Endpoint("10.0.0.2", 8000), Endpoint("10.0.0.3", 8000)
        table.upsert_deployment(DeploymentRoute("ns", "m", "model"))
        table.set_endpoints(KEY, [a, b, c])
        picks = [table.acquire(KEY) for _ in range(6)]
        assert sorted(p.address for p in picks if p) == sorted([a.address, b.address, c.address] * 2)
        table.release(a)
        table.release(a)
        assert table.acquire(KEY) == a  # a now has none in flight, the others two each
        assert table.acquire(KEY, exclude=frozenset({a.url, b.url})) == c

    asyncio.run(main())


def test_change_wakes_waiters_and_unroutable_endpoints_are_skipped() -> None:
    async def main() -> None:
        table = RoutingTable()
        table.upsert_deployment(DeploymentRoute("ns", "m", "model"))
        waiter = asyncio.create_task(table.wait_changed(KEY, 5))
        await asyncio.sleep(0)
        table.set_endpoints(KEY, [Endpoint("10.0.0.1", 8000, ready=False)])
        assert await waiter
        assert table.acquire(KEY) is None
        assert not await table.wait_changed(KEY, 0.01)
        table.set_endpoints(KEY, [Endpoint("10.0.0.1", 8000, ready=True, terminating=True)])
        assert table.acquire(KEY) is None

    asyncio.run(main())


@pytest.mark.parametrize(
    ("requested", "expected_rewrite"),
    [("served", None), ("org/model", "served"), ("other", "missing")],
)
def test_lookup_prefers_served_name_then_model_id(requested: str, expected_rewrite: str | None) -> None:
    table = RoutingTable()
    table.upsert_deployment(DeploymentRoute("ns", "m", "org/model", "served"))
    match = table.lookup(requested)
    if expected_rewrite == "missing":
        assert match is None
    else:
        assert match is not None and match.route.key == KEY
        assert match.rewrite_model_to == expected_rewrite


def test_ipv6_endpoint_url_is_bracketed() -> None:
    assert Endpoint("fd00::1", 8000).url == "http://[fd00::1]:8000"

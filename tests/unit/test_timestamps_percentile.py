"""The one RFC 3339 helper and the one percentile helper (values worked out by hand)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from llmscale.percentile import PERCENTILE_METHOD, percentile
from llmscale.timestamps import parse_rfc3339, rfc3339

# 2026-12-07T05:00:00Z = 20794 days after 1970-01-01 (56 years with 14 leap days: 56*365+14 =
# 20454, plus 340 days into 2026) = 1,796,601,600 s, plus 5 h = 1,796,619,600 s.
EPOCH = 1_796_619_600.0


def test_rfc3339_from_epoch_and_from_any_zone() -> None:
    assert rfc3339(EPOCH) == "2026-12-07T05:00:00Z"
    assert rfc3339(EPOCH + 0.25, microseconds=True) == "2026-12-07T05:00:00.250000Z"
    plus_two = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2026, 12, 7, 7, 0, 0, tzinfo=plus_two)) == "2026-12-07T05:00:00Z"


def test_parse_rfc3339_round_trips_and_refuses_what_is_not_one() -> None:
    assert parse_rfc3339("2026-12-07T05:00:00Z") == EPOCH
    assert parse_rfc3339("2026-12-07T05:00:00.500000Z") == EPOCH + 0.5
    assert parse_rfc3339(datetime(2026, 12, 7, 5, tzinfo=UTC)) == EPOCH
    assert parse_rfc3339("yesterday") is None
    assert parse_rfc3339("") is None
    assert parse_rfc3339(None) is None


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),  # rank 1.5: halfway between 2 and 3
        ([float(v) for v in range(1, 101)], 95, 95.05),  # rank 94.05 -> 95 + 0.05
        ([10.0, 0.0], 25, 2.5),  # sorted first: rank 0.25 between 0 and 10
        ([7.0], 99, 7.0),
        ([1.0, 2.0, 3.0], 100, 3.0),
    ],
)
def test_percentile_is_linear_between_closest_ranks(values: list[float], q: float, expected: float) -> None:
    assert PERCENTILE_METHOD == "linear"
    assert percentile(values, q) == pytest.approx(expected)


def test_percentile_of_nothing_is_none_and_q_is_checked() -> None:
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="q=101"):
        percentile([1.0], 101)

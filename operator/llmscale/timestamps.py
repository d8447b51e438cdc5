"""RFC 3339 timestamps as Kubernetes writes them: the one formatter and parser for every layer.

The API server writes `2026-12-07T05:12:03Z` (seconds, UTC, `Z`) in metadata and conditions;
MicroTime fields (and the local pod runner's annotations) carry microseconds. Pure: no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime | float, *, microseconds: bool = False) -> str:
    """A datetime (any zone) or epoch seconds as UTC RFC 3339 with `Z`, e.g. 2026-12-07T05:12:03Z."""
    when = (
        datetime.fromtimestamp(moment, tz=UTC) if isinstance(moment, int | float) else moment.astimezone(UTC)
    )
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if microseconds else "%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: object) -> float | None:
    """RFC 3339 text (or a datetime from the typed client) -> epoch seconds; None when it is not one."""
    if isinstance(value, datetime):
        return value.timestamp()
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None

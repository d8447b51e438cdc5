"""Go-style duration strings (`500ms`, `2s`, `1m30s`) as used in `spec.scaling.slo`."""

from __future__ import annotations

import re
from typing import Final

# One or more <number><unit> groups, Go's time.ParseDuration without the signs and micro units.
DURATION_PATTERN: Final = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_UNIT_SECONDS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration_seconds(text: str) -> float:
    """`"1m30s"` -> 90.0. Raises ValueError naming the text when it is not a duration."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"{text!r} is not a duration; expected e.g. 500ms, 2s, 1m30s")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))

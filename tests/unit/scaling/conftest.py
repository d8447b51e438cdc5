"""Fixtures of the decision-core tests; the helpers live in scaling_timeline_kit.py (a uniquely
named module: `from conftest import ...` would pick whichever conftest was imported first)."""

from __future__ import annotations

import pytest
from scaling_timeline_kit import Timeline

from llmscale.scaling import ScalingPolicy


@pytest.fixture
def make_timeline():
    def build(policy: ScalingPolicy | None = None, **kwargs: object) -> Timeline:
        return Timeline(policy=policy or ScalingPolicy(), **kwargs)  # type: ignore[arg-type]

    return build

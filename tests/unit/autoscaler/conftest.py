"""Fixtures of the scaling-loop tests; the fakes live in autoscaler_testkit.py (a uniquely named
module: `from conftest import ...` would pick whichever conftest was imported first)."""

from __future__ import annotations

import pytest
from autoscaler_testkit import Clock, FakeCluster


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def clock() -> Clock:
    return Clock()

"""Fixtures of the emulator's tests (helpers live in emulator_fakes.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from emulator_fakes import run_with_emulator


@pytest.fixture
def emulate() -> Callable[..., Any]:
    return run_with_emulator

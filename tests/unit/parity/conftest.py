"""The parity test reuses the scaling loop's fakes (tests/unit/autoscaler/autoscaler_testkit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "autoscaler"))

"""Synthetic traffic shapes that no public trace here covers.

`sparse_developer_trace`: a small team of developers using a coding model from their editors.
Each developer works in sessions that start as a Poisson process (one every
`SESSION_GAP_SECONDS` on average: idle gaps of minutes to hours, the scale-to-zero case); a
session holds a geometric number of requests (mean `REQUESTS_PER_SESSION`) separated by think
times (exponential, mean `THINK_SECONDS`); prompts carry code context (log-normal, median 2,000
tokens, p90 6,000), answers are short (median 120 tokens, p90 450). `rate_scale` multiplies the
number of developers (BASE_DEVELOPERS), not the pace of each, so more load keeps the same shape.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from llmscale.errors import UserInputError
from llmscale.sim.traces import Trace

BASE_DEVELOPERS = 4
SESSION_GAP_SECONDS = 1200.0
REQUESTS_PER_SESSION = 6.0
THINK_SECONDS = 40.0
_Z90 = 1.2815515655446004

GENERATORS: tuple[str, ...] = ("sparse-developer",)


def _lognormal(
    rng: np.random.Generator, count: int, median: float, p90: float, cap: int
) -> npt.NDArray[np.int64]:
    sigma = math.log(p90 / median) / _Z90
    return np.clip(np.rint(rng.lognormal(math.log(median), sigma, count)), 1, cap).astype(np.int64)


def sparse_developer_trace(duration_seconds: float, *, rate_scale: float = 1.0, seed: int = 0) -> Trace:
    developers = max(1, round(BASE_DEVELOPERS * rate_scale))
    rng = np.random.default_rng(seed)
    arrivals: list[float] = []
    for _ in range(developers):
        now = float(rng.exponential(SESSION_GAP_SECONDS))
        while now < duration_seconds:
            requests = int(rng.geometric(1.0 / REQUESTS_PER_SESSION))
            for _ in range(requests):
                if now >= duration_seconds:
                    break
                arrivals.append(now)
                now += float(rng.exponential(THINK_SECONDS))
            now += float(rng.exponential(SESSION_GAP_SECONDS))
    times = np.sort(np.asarray(arrivals, dtype=np.float64))
    count = len(times)
    return Trace(
        f"sparse-developer x{developers}",
        times,
        _lognormal(rng, count, 2000.0, 6000.0, 30000),
        _lognormal(rng, count, 120.0, 450.0, 2000),
        "generated",
    )


def generate(name: str, duration_seconds: float | None, *, rate_scale: float, seed: int) -> Trace:
    if name != "sparse-developer":
        raise UserInputError(f"generator: value {name!r} is unknown; expected one of {', '.join(GENERATORS)}")
    return sparse_developer_trace(duration_seconds or 4 * 3600.0, rate_scale=rate_scale, seed=seed)

"""Policies that know the whole trace: `warm` (fixed at peak need) and `oracle` (lower bound).

`warm` is the always-on reference a team would size by hand from last week's peak; the oracle
that bounds every policy is `llmscale.sim.oracle` (the per-bin `OraclePolicy` below is kept for
`get_policy("oracle")` users and sizes like warm, bin by bin).

Need per 1-s bin (per TTFT-target bin if that is longer) = the larger of
* ceil(request rate over the surrounding 10-s bin / the replica's capacity within the SLO),
  capacity = saturation on this trace's own mean lengths (these policies know the trace) x the
  planned utilisation (`llmscale.sim.capacity.PRIOR_UTILISATION`);
* ceil(requests in the bin / one second of saturation throughput): a burst shorter than the
  TTFT target must be absorbed within it at full speed, or it misses the SLO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from llmscale.sim.capacity import PRIOR_UTILISATION
from llmscale.sim.policy import FleetObservation, SimContext

SMOOTH_BIN_SECONDS = 10.0


def default_bin_seconds(context: SimContext) -> float:
    return max(1.0, context.slo_ttft_p95_seconds)


def need_per_bin(context: SimContext, bin_seconds: float) -> npt.NDArray[np.int64]:
    """Replicas needed in each `bin_seconds` bin of the trace (0 where no request arrives)."""
    trace = context.trace
    if trace is None:
        raise ValueError("this policy needs the trace (needs_trace = True)")
    bins = max(1, math.ceil((trace.duration_seconds + 1e-9) / bin_seconds))
    counts = np.bincount((trace.arrival_seconds // bin_seconds).astype(np.int64), minlength=bins)[:bins]
    mean_input = float(np.mean(trace.input_tokens)) if len(trace.input_tokens) else 1.0
    mean_output = float(np.mean(trace.output_tokens)) if len(trace.output_tokens) else 1.0
    saturation = context.model.saturation_requests_per_second(max(1.0, mean_input), max(1.0, mean_output))
    capacity = saturation * PRIOR_UTILISATION
    burst_need = np.ceil(counts / (saturation * bin_seconds) - 1e-9).astype(np.int64)
    per_smooth = max(1, round(SMOOTH_BIN_SECONDS / bin_seconds))
    padded = np.zeros(math.ceil(bins / per_smooth) * per_smooth, dtype=np.int64)
    padded[:bins] = counts
    smooth_rates = padded.reshape(-1, per_smooth).sum(axis=1) / (per_smooth * bin_seconds)
    smooth_need = np.ceil(smooth_rates / capacity - 1e-9).astype(np.int64)
    need: npt.NDArray[np.int64] = np.maximum(burst_need, np.repeat(smooth_need, per_smooth)[:bins])
    need[counts > 0] = np.maximum(need[counts > 0], 1)
    return need


@dataclass
class WarmPolicy:
    """Always-on capacity sized for the trace's peak (never below 1)."""

    name: str = "warm"
    tick_seconds: float = 60.0
    bin_seconds: float | None = None  # None: default_bin_seconds (the TTFT target, >= 1 s)
    needs_trace: bool = True
    replicas: int = field(default=1, init=False)

    def prepare(self, context: SimContext) -> None:
        bin_seconds = self.bin_seconds or default_bin_seconds(context)
        self.replicas = max(1, int(need_per_bin(context, bin_seconds).max()))

    def decide(self, observation: FleetObservation) -> int:
        return self.replicas


@dataclass
class OraclePolicy:
    """Provisions exactly the replicas each interval needs, each started one cold start
    early (it knows the future and the cold start), and releases them as soon as the need
    drops; scales to zero when nothing arrives in the look-ahead."""

    name: str = "oracle"
    tick_seconds: float = 5.0
    bin_seconds: float | None = None  # None: default_bin_seconds (the TTFT target, >= 1 s)
    needs_trace: bool = True
    _bin: float = field(default=1.0, init=False)
    _need: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64), init=False)
    _lead_seconds: float = field(default=0.0, init=False)

    def prepare(self, context: SimContext) -> None:
        self._bin = self.bin_seconds or default_bin_seconds(context)
        self._need = need_per_bin(context, self._bin)
        # Started one (worst-case jittered) cold start plus one tick early.
        self._lead_seconds = context.cold_start_seconds * 1.1 + self.tick_seconds

    def decide(self, observation: FleetObservation) -> int:
        first = int(observation.now // self._bin)
        last = int((observation.now + self._lead_seconds) // self._bin) + 1
        window = self._need[first : last + 1]
        # Scale-down is graceful (drained replicas finish their requests), so dropping at once is safe.
        return int(window.max()) if len(window) else 0

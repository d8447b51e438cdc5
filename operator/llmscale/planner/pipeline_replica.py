"""The performance model of a pipeline-parallel (multi-node) replica: step cost and cold start.

A replica of `pp` nodes runs `pp` pipeline stages, each on `tp` GPUs holding 1/pp of the layers.
vLLM keeps up to `pp` micro-batches in flight, one per stage. With B running sequences split
into pp micro-batches, one "round" (every sequence advances one token) costs, per stage:

    pp micro-batches x (read its weights: W / pp) + all B sequences x (its layers: c / pp)
    = W + B x c / pp

where W is the time to read all weights at one node's bandwidth (tp GPUs) and c the per-sequence
compute of all layers on tp GPUs. So, next to a single-node replica of the same tp:

- the fixed cost per step (weight read, scheduler overhead) is unchanged: pipeline stages add
  no bandwidth to one token, which still passes every stage in turn;
- every term that grows with the batch or with context (decode compute, KV reads, prefill
  compute and attention) is spread over pp times the GPUs: divided by pp;
- each step crosses pp - 1 node boundaries: INTER_NODE_HOP_SECONDS each (NCCL send/recv and the
  stage hand-off), plus each token's activations (hidden size x activation bytes) at
  INTER_NODE_BYTES_PER_SECOND.

Cold start of a group: every node loads only its stage's weights, in parallel, so the load part
is that of weights / pp; on top, the leader's Ray head must see every worker join before vLLM
starts (GROUP_FORMATION_SECONDS). The group is Ready when its slowest stage is.

The constants are assumptions, not calibrated against a measured multi-node deployment (none is
available here); docs/simulator.md lists them with their reasoning.

Pure numbers in, numbers out: no import of the performance model (it calls this).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Per stage boundary per engine step: an NCCL point-to-point transfer over InfiniBand/RoCE is
# tens of microseconds; Ray's compiled-graph hand-off between stages adds a few hundred.
INTER_NODE_HOP_SECONDS: Final = 0.0004
# One 400 Gb/s NIC (NDR InfiniBand / 400 GbE) per boundary: 50 GB/s.
INTER_NODE_BYTES_PER_SECOND: Final = 50e9
# Ray head start plus every worker joining (multi-node-serving.sh waits for them), and the
# distributed executor's start-up across nodes.
GROUP_FORMATION_SECONDS: Final = 20.0


@dataclass(frozen=True)
class PipelineTerms:
    """How a pp-stage replica changes the single-node step-cost terms."""

    stages: int
    extra_fixed_seconds: float  # per step: pp - 1 hops
    variable_divisor: float  # batch- and context-proportional terms are divided by this
    transfer_seconds_per_token: float  # activations of one token crossing one boundary


def pipeline_terms(stages: int, hidden_size: int, activation_dtype_bytes: int) -> PipelineTerms:
    if stages < 1:
        raise ValueError(f"stages: {stages} must be >= 1")
    hops = stages - 1
    return PipelineTerms(
        stages=stages,
        extra_fixed_seconds=hops * INTER_NODE_HOP_SECONDS,
        variable_divisor=float(stages),
        # boundaries transfer in parallel with the stages' compute: one boundary's worth per token
        transfer_seconds_per_token=(hidden_size * activation_dtype_bytes / INTER_NODE_BYTES_PER_SECOND)
        if hops
        else 0.0,
    )


def group_cold_start_seconds(
    stages: int, single_node_cold_start_seconds: float, fixed_seconds: float
) -> float:
    """Pod creation to Ready for a group: each node loads weights / stages, plus group formation.

    `single_node_cold_start_seconds` is the single-node formula at the whole weights; its
    weight-proportional part (above `fixed_seconds`) is divided among the stages' nodes.
    """
    if stages <= 1:
        return single_node_cold_start_seconds
    loading = max(0.0, single_node_cold_start_seconds - fixed_seconds) / stages
    return fixed_seconds + loading + GROUP_FORMATION_SECONDS

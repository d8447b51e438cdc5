"""Pipeline parallelism across nodes: how vLLM splits layers into stages, and what crosses nodes.

vLLM's multi-node layout (docs, "Parallelism and Scaling"): tensor parallel within a node
(`--tensor-parallel-size` = GPUs per node) and pipeline parallel across nodes
(`--pipeline-parallel-size` = nodes). Each pipeline stage holds a contiguous slice of the
decoder layers; the first stage also holds the input embedding, the last the LM head.

Layer split: vLLM's `get_pp_indices` gives every stage `layers // stages` layers and hands
the remainder, one each, to the stages just before the last (the last already carries the
LM head). The KV cache is paged per stage, and the engine sizes it by the stage with the
fewest free blocks, so the worst stage decides the replica's KV capacity.
"""

from __future__ import annotations

from typing import Final

from llmscale.planner.architecture import ModelArchitecture

# Default ceiling of nodes one replica may span (`llmscale plan --max-nodes`,
# `spec.resources.maxNodesPerReplica`): a 405B bf16 model needs 2 nodes of 8 x 80 GB; 4 leaves
# room for longer contexts or smaller GPUs while keeping a group's blast radius bounded.
DEFAULT_MAX_NODES_PER_REPLICA: Final = 4
# Beyond this a replica would be a cluster of its own; vLLM supports it, an operator should ask.
MAX_NODES_PER_REPLICA_LIMIT: Final = 16


def stage_layers(num_layers: int, stages: int) -> tuple[int, ...]:
    """Decoder layers per pipeline stage, as vLLM's get_pp_indices splits them."""
    if stages < 1 or stages > num_layers:
        raise ValueError(f"stages: {stages} must be within 1..{num_layers}")
    counts = [num_layers // stages] * stages
    for offset in range(2, num_layers % stages + 2):
        counts[-offset] += 1
    return tuple(counts)


def stage_embedding_parameters(model: ModelArchitecture, stage: int, stages: int) -> int:
    """Embedding/LM-head parameters a stage holds: both on one stage, else first and last."""
    if stages == 1:
        return model.embedding_parameters()
    table = model.vocab_size * model.hidden_size
    return (table if stage == 0 else 0) + (table if stage == stages - 1 else 0)


def inter_node_note(model: ModelArchitecture, nodes: int, activation_dtype_bytes: int) -> str:
    """The caveat every multi-node plan carries, with the bytes that cross each node boundary."""
    hop_kib = model.hidden_size * activation_dtype_bytes / 1024
    return (
        f"pipeline parallel across {nodes} nodes: every forward pass crosses {nodes - 1} node"
        f" boundar{'y' if nodes == 2 else 'ies'} ({hop_kib:g} KiB of activations per token per hop), so"
        " the per-token latency floor is no lower than one node's and the nodes need a fast"
        " interconnect (InfiniBand or RoCE for NCCL); the group starts, fails and scales as one unit"
    )

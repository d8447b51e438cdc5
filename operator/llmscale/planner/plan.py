"""`plan()`: will this model fit this GPU under vLLM, on how many GPUs, with what KV capacity?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from llmscale.errors import UserInputError
from llmscale.planner import budget, pipeline
from llmscale.planner.architecture import ModelArchitecture
from llmscale.planner.catalog import resolve_model
from llmscale.planner.gpus import GIB, GPUSpec, get_gpu
from llmscale.planner.quantization import (
    DTYPE_BYTES,
    ONLINE_METHODS,
    WeightPrecision,
    resolve_precision,
    weight_bytes,
)

# Tensor-parallel sizes tried automatically: powers of two within one 8-GPU node.
AUTO_TENSOR_PARALLEL_SIZES = (1, 2, 4, 8)
MAX_GPUS_PER_NODE = 8
_KV_CACHE_DTYPES: dict[str, int] = {"fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}


class ContextTooLongError(UserInputError):
    """--max-model-len exceeds the model's maximum context (vLLM refuses to start)."""


class Plan(BaseModel):
    """The planner's answer for one model on one GPU type. Memory in GiB (2**30 bytes)."""

    model_config = ConfigDict(frozen=True)

    model: str
    gpu: str
    gfd_product: str
    fits: bool
    reason: str | None
    tensor_parallel_size: int  # GPUs per node (one pod per node)
    pipeline_parallel_size: int  # pipeline stages = nodes per replica (1: one node)
    nodes_per_replica: int
    gpus_per_node: int
    max_nodes_per_replica: int  # the ceiling this plan was allowed
    gpus: int  # all GPUs of one replica: tensor x pipeline parallel
    quantization: str  # fp32, bf16, fp16, fp8, int8, awq-4bit, gptq-4bit, bnb-nf4
    dtype: str  # activation dtype vLLM will run
    kv_cache_dtype: str  # "auto" (= dtype) or "fp8"
    parameter_count: int
    active_parameter_count: int  # per token; differs from parameter_count for MoE
    weights_gib: float  # whole model, all GPUs
    weights_per_gpu_gib: float
    gpu_memory_gib: float  # per GPU, as CUDA reports it
    gpu_memory_utilization: float
    usable_memory_per_gpu_gib: float  # gpu_memory_gib x gpu_memory_utilization
    activation_peak_per_gpu_gib: float
    cuda_graph_per_gpu_gib: float
    non_torch_per_gpu_gib: float
    kv_cache_gib: float  # all GPUs together
    kv_bytes_per_token: int  # one token, all layers, all GPUs
    kv_cache_blocks: int  # vLLM's "# GPU blocks" (16 tokens each)
    kv_cache_tokens: int  # KV capacity of one replica
    max_model_len: int
    model_max_len: int  # the model's own maximum context
    max_fitting_model_len: int  # longest context with room for one sequence (0 = weights do not fit)
    max_concurrent_sequences: int  # full-length sequences whose KV fits at once
    max_num_seqs: int  # vLLM's default cap on running sequences for this GPU
    max_num_batched_tokens: int
    itl_floor_seconds: float  # active weight bytes / (TP x HBM bandwidth)
    gpu_price_per_hour_usd: float
    gpu_cost_per_hour: float  # price x all GPUs of the replica, USD
    inter_node_note: str | None = None  # the multi-node caveat (None on one node)
    notes: tuple[str, ...] = ()

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _check_positive_fraction(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise UserInputError(
            f"--gpu-memory-utilization: value {value!r} is invalid; expected a number in (0, 1]"
        )
    return float(value)


def _kv_dtype_bytes(kv_cache_dtype: str, precision: WeightPrecision, gpu: GPUSpec) -> int:
    key = kv_cache_dtype.strip().lower()
    if key == "auto":
        return DTYPE_BYTES[precision.dtype]
    if key not in _KV_CACHE_DTYPES:
        raise UserInputError(
            f"--kv-cache-dtype: value {kv_cache_dtype!r} is not supported; expected auto or fp8"
        )
    if gpu.compute_capability < (8, 0):
        raise UserInputError(f"--kv-cache-dtype: value {kv_cache_dtype!r} is impossible on {gpu.name}")
    return _KV_CACHE_DTYPES[key]


def tensor_parallel_problem(model: ModelArchitecture, precision: WeightPrecision, tp: int) -> str | None:
    """Why vLLM would refuse this tensor-parallel size, or None when it is valid."""
    if model.num_attention_heads % tp:
        return f"{model.num_attention_heads} attention heads are not divisible by {tp}"
    kv = model.num_key_value_heads
    if (tp >= kv and tp % kv) or (tp < kv and kv % tp):
        return f"{kv} KV heads can be neither split across nor replicated onto {tp} GPUs"
    if precision.method in ("awq", "gptq") and precision.group_size and precision.group_size > 0:
        width = (
            (model.moe_intermediate_size or model.intermediate_size)
            if model.is_moe
            else model.intermediate_size
        )
        if (width // tp) % precision.group_size or width % tp:
            return (
                f"intermediate size {width} / {tp} GPUs is not a multiple of the "
                f"{precision.method} group size {precision.group_size}"
            )
    return None


def _largest_fitting_len(
    model: ModelArchitecture, tp: int, kv_bytes: int, kv_budget: float, limit: int
) -> int:
    if kv_budget <= 0 or budget.kv_bytes_per_sequence_per_gpu(model, tp, kv_bytes, 1) > kv_budget:
        return 0
    low, high = 1, limit  # invariant: `low` fits
    while low < high:
        middle = (low + high + 1) // 2
        if budget.kv_bytes_per_sequence_per_gpu(model, tp, kv_bytes, middle) <= kv_budget:
            low = middle
        else:
            high = middle - 1
    return low


def _evaluate(
    model: ModelArchitecture,
    gpu: GPUSpec,
    precision: WeightPrecision,
    tp: int,
    max_model_len: int,
    gpu_memory_utilization: float,
    kv_cache_dtype: str,
    kv_bytes: int,
    notes: tuple[str, ...],
    defaults: budget.EngineDefaults,
    enforce_eager: bool,
    pp: int = 1,
    max_nodes: int = 1,
) -> Plan:
    """One candidate layout: `tp` GPUs per node (tensor parallel) x `pp` nodes (pipeline stages)."""
    weights = weight_bytes(model, precision)
    act_bytes = DTYPE_BYTES[precision.dtype]
    replication = budget.kv_heads_per_gpu(model, tp) / model.num_key_value_heads
    usable = gpu.memory_bytes * gpu_memory_utilization
    activation = budget.activation_peak_bytes(
        model,
        tensor_parallel_size=tp,
        activation_dtype_bytes=act_bytes,
        max_num_batched_tokens=defaults.max_num_batched_tokens,
        max_num_seqs=defaults.max_num_seqs,
    )
    non_torch = budget.non_torch_bytes(tp * pp)
    layers = model.num_hidden_layers
    body = weights.total - model.embedding_parameters() * act_bytes  # decoder layers (and norms)
    # Per stage: its share of the layers, its embedding tables, its CUDA graphs. With one stage
    # this is the whole model (the single-node budget). `effective` is the KV budget of a GPU
    # that held every layer: the worst stage's budget scaled by layers / its layers.
    weights_per_gpu = 0.0
    cuda_graphs = 0
    kv_budget = 0.0
    effective = float("inf")
    for stage, stage_layer_count in enumerate(pipeline.stage_layers(layers, pp)):
        share = stage_layer_count / layers
        kv_projection = weights.kv_projection * share
        stage_weights = body * share + pipeline.stage_embedding_parameters(model, stage, pp) * act_bytes
        per_gpu = (stage_weights - kv_projection) / tp + kv_projection * replication
        graphs = 0 if enforce_eager else budget.cuda_graph_bytes(model, stage_layer_count)
        stage_budget = usable - per_gpu - activation - non_torch - graphs
        if stage_budget / share < effective:
            effective = stage_budget / share
            weights_per_gpu, cuda_graphs, kv_budget = per_gpu, graphs, stage_budget
    per_token_per_gpu = budget.kv_bytes_per_token_per_layer_per_gpu(model, tp, kv_bytes) * layers
    blocks = max(0, int(effective // (per_token_per_gpu * budget.BLOCK_SIZE_TOKENS)))
    sequence_bytes = budget.kv_bytes_per_sequence_per_gpu(model, tp, kv_bytes, max_model_len)
    concurrent = max(0, int(effective // sequence_bytes))
    fitting_len = _largest_fitting_len(model, tp, kv_bytes, effective, model.max_position_embeddings)
    fits = concurrent >= 1
    layout = f"tensor parallel {tp}" if pp == 1 else f"tensor parallel {tp} x pipeline parallel {pp}"
    reason: str | None = None
    if kv_budget <= 0:
        reason = (
            f"weights need {weights_per_gpu / GIB:.2f} GiB per GPU at {layout}, plus "
            f"{(activation + non_torch + cuda_graphs) / GIB:.2f} GiB of activations and runtime overhead, "
            f"but {gpu.name} offers {usable / GIB:.2f} GiB "
            f"({gpu.memory_gib:.2f} GiB x {gpu_memory_utilization:g})"
        )
    elif not fits:
        reason = (
            f"max-model-len {max_model_len} needs {sequence_bytes * tp / GIB:.2f} GiB of KV cache "
            "per sequence "
            f"but only {effective * tp / GIB:.2f} GiB remain for the KV cache at {layout}; "
            f"the longest context that fits is {fitting_len} tokens"
        )
    gpus = tp * pp
    return Plan(
        model=model.name,
        gpu=gpu.name,
        gfd_product=gpu.gfd_product,
        fits=fits,
        reason=reason,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        nodes_per_replica=pp,
        gpus_per_node=tp,
        max_nodes_per_replica=max_nodes,
        gpus=gpus,
        quantization=precision.label,
        dtype=precision.dtype,
        kv_cache_dtype="auto" if kv_cache_dtype.strip().lower() == "auto" else "fp8",
        parameter_count=model.parameter_count(),
        active_parameter_count=model.active_parameter_count(),
        weights_gib=round(weights.total / GIB, 3),
        weights_per_gpu_gib=round(weights_per_gpu / GIB, 3),
        gpu_memory_gib=round(gpu.memory_gib, 3),
        gpu_memory_utilization=gpu_memory_utilization,
        usable_memory_per_gpu_gib=round(usable / GIB, 3),
        activation_peak_per_gpu_gib=round(activation / GIB, 3),
        cuda_graph_per_gpu_gib=round(cuda_graphs / GIB, 3),
        non_torch_per_gpu_gib=round(non_torch / GIB, 3),
        kv_cache_gib=round(max(0.0, effective) * tp / GIB, 3),
        kv_bytes_per_token=per_token_per_gpu * tp,
        kv_cache_blocks=blocks,
        kv_cache_tokens=blocks * budget.BLOCK_SIZE_TOKENS,
        max_model_len=max_model_len,
        model_max_len=model.max_position_embeddings,
        max_fitting_model_len=fitting_len,
        max_concurrent_sequences=concurrent,
        max_num_seqs=defaults.max_num_seqs,
        max_num_batched_tokens=defaults.max_num_batched_tokens,
        # A token passes every stage in turn: pipeline stages add no bandwidth to one token.
        itl_floor_seconds=weights.active / (tp * gpu.hbm_bandwidth_bytes_per_second),
        gpu_price_per_hour_usd=gpu.price_per_hour_usd,
        gpu_cost_per_hour=round(gpu.price_per_hour_usd * gpus, 4),
        inter_node_note=pipeline.inter_node_note(model, pp, act_bytes) if pp > 1 else None,
        notes=notes,
    )


def _optional_positive(flag: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise UserInputError(f"{flag}: value {value!r} is invalid; expected a positive integer")
    return value


def check_gpu_count(gpus: int) -> int:
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 1:
        raise UserInputError(f"--gpus: value {gpus!r} is invalid; expected a positive integer")
    if gpus > MAX_GPUS_PER_NODE:
        raise UserInputError(
            f"--gpus: value {gpus} exceeds {MAX_GPUS_PER_NODE}; tensor parallelism is planned within one node"
        )
    return gpus


def plan(
    model: str | Path | dict[str, Any] | ModelArchitecture,
    gpu: str | GPUSpec,
    *,
    gpus: int | None = None,
    quantization: str | None = None,
    max_model_len: int | None = None,
    gpu_memory_utilization: float = 0.9,
    kv_cache_dtype: str = "auto",
    dtype: str = "auto",
    gpu_price_per_hour_usd: float | None = None,
    max_num_batched_tokens: int | None = None,
    max_num_seqs: int | None = None,
    enforce_eager: bool = False,
    nodes: int | None = None,
    max_nodes: int = pipeline.DEFAULT_MAX_NODES_PER_REPLICA,
) -> Plan:
    """Plan serving `model` with vLLM on `gpu`.

    Multi-node: when no single node fits and `max_nodes` > 1, it plans vLLM's multi-node layout
    (tensor parallel = the largest valid size within a node, pipeline parallel = nodes) on the
    fewest nodes, up to `max_nodes`, that fit; when even `max_nodes` nodes do not fit, that plan
    comes back with `fits=False` and the numbers. `nodes` plans exactly that many nodes (with
    `gpus` GPUs each, default the largest valid size).

    Without `gpus` it picks the smallest valid tensor-parallel size (1, 2, 4, 8) that fits;
    when none fits, the plan at the largest valid size comes back with `fits=False` and a
    reason carrying the numbers. With `gpus` it plans exactly that many. Bad input (unknown
    model or GPU, impossible quantisation, an invalid GPU count, a context longer than the
    model's) raises UserInputError (ContextTooLongError, UnknownModelError) naming the value.
    `max_num_batched_tokens` and `max_num_seqs` are vLLM's flags of the same name (they size
    the profiling pass); by default vLLM's serving defaults for this GPU. `enforce_eager`
    (vLLM's --enforce-eager) drops the CUDA-graph term from the budget.
    """
    architecture = resolve_model(model)
    spec = gpu if isinstance(gpu, GPUSpec) else get_gpu(gpu)
    if gpu_price_per_hour_usd is not None:
        spec = spec.with_price(gpu_price_per_hour_usd)
    utilization = _check_positive_fraction(gpu_memory_utilization)
    precision = resolve_precision(architecture, spec, quantization, dtype)
    kv_bytes = _kv_dtype_bytes(kv_cache_dtype, precision, spec)
    model_max = architecture.max_position_embeddings
    if max_model_len is not None:
        if isinstance(max_model_len, bool) or not isinstance(max_model_len, int) or max_model_len < 1:
            raise UserInputError(
                f"--max-model-len: value {max_model_len!r} is invalid; expected a positive integer"
            )
        if max_model_len > model_max:
            raise ContextTooLongError(
                f"--max-model-len: value {max_model_len} exceeds the maximum context of {architecture.name}, "
                f"{model_max} tokens"
            )
    length = max_model_len or model_max
    standard = budget.engine_defaults(spec)
    defaults = budget.EngineDefaults(
        max_num_batched_tokens=_optional_positive("--max-num-batched-tokens", max_num_batched_tokens)
        or standard.max_num_batched_tokens,
        max_num_seqs=_optional_positive("--max-num-seqs", max_num_seqs) or standard.max_num_seqs,
    )
    notes: tuple[str, ...] = ()
    if (
        precision.method is not None
        and precision.method not in ONLINE_METHODS
        and not (architecture.checkpoint_quantization)
    ):
        notes = (f"{precision.method} needs a checkpoint quantised offline with the same architecture",)

    max_nodes = check_node_count("--max-nodes", max_nodes)
    if nodes is not None:
        nodes = check_node_count("--nodes", nodes)
        if nodes > architecture.num_hidden_layers:
            raise UserInputError(
                f"--nodes: value {nodes} exceeds the {architecture.num_hidden_layers} layers of "
                f"{architecture.name}; every pipeline stage needs at least one layer"
            )
        max_nodes = max(max_nodes, nodes)

    def evaluate(tp: int, pp: int = 1) -> Plan:
        return _evaluate(
            architecture,
            spec,
            precision,
            tp,
            length,
            utilization,
            kv_cache_dtype,
            kv_bytes,
            notes,
            defaults,
            enforce_eager,
            pp,
            max_nodes,
        )

    candidates = [
        tp
        for tp in AUTO_TENSOR_PARALLEL_SIZES
        if tensor_parallel_problem(architecture, precision, tp) is None
    ]

    def across_nodes(tp: int, single_node: Plan) -> Plan:
        """vLLM's multi-node layout at `tp` GPUs per node, on as few nodes as fit."""
        last = single_node
        for pp in range(2, min(max_nodes, architecture.num_hidden_layers) + 1):
            last = evaluate(tp, pp)
            if last.fits:
                return last
        scope = (
            f"{last.tensor_parallel_size} x {spec.name}"
            if last.nodes_per_replica == 1
            else f"{last.nodes_per_replica} nodes of {last.tensor_parallel_size} x {spec.name}"
            " (the most nodes per replica allowed)"
        )
        hint = "; multi-node replicas are off (at most 1 node per replica)" if max_nodes == 1 else ""
        return last.model_copy(update={"reason": f"does not fit on up to {scope}: {last.reason}{hint}"})

    if gpus is not None:
        tp = check_gpu_count(gpus)
        problem = tensor_parallel_problem(architecture, precision, tp)
        if problem is not None:
            raise UserInputError(f"--gpus: value {tp} is not a valid tensor-parallel size: {problem}")
        if nodes is not None:
            return evaluate(tp, nodes)
        single = evaluate(tp)
        # Several nodes only with a full node per stage (vLLM: tensor parallel = GPUs per node):
        # a smaller count that does not fit is the count's problem, and the answer says so.
        if single.fits or max_nodes == 1 or not candidates or tp != candidates[-1]:
            return single
        return across_nodes(tp, single)
    if not candidates:
        raise UserInputError(
            f"--model: {architecture.name} has no valid tensor-parallel size among "
            f"{', '.join(map(str, AUTO_TENSOR_PARALLEL_SIZES))}: "
            f"{tensor_parallel_problem(architecture, precision, 1)}"
        )
    if nodes is not None and nodes > 1:
        return evaluate(candidates[-1], nodes)
    last: Plan | None = None
    for tp in candidates:
        last = evaluate(tp)
        if last.fits:
            return last
    assert last is not None
    return across_nodes(candidates[-1], last)


def check_node_count(flag: str, nodes: int) -> int:
    """Nodes per replica: a positive integer up to MAX_NODES_PER_REPLICA_LIMIT."""
    limit = pipeline.MAX_NODES_PER_REPLICA_LIMIT
    if isinstance(nodes, bool) or not isinstance(nodes, int) or not 1 <= nodes <= limit:
        raise UserInputError(f"{flag}: value {nodes!r} is invalid; expected an integer from 1 to {limit}")
    return nodes

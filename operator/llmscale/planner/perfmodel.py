"""How one vLLM replica turns requests into time: the replica performance model.

Pure (the planner layer): the operator derives its capacity priors from it (`capacity_prior`), the
simulator and the emulator run replicas on it. `llmscale.sim.perfmodel` re-exports it.

A vLLM engine runs in iterations ("steps"). Each step reads every weight once from HBM,
runs one decode token for every running sequence, reads their KV cache, and (with chunked
prefill) spends the rest of a token budget on prompt tokens. So the cost of one step is
additive:

    step = overhead + weights / bandwidth                       (fixed per step)
         + decode_sequences * per_sequence_compute               (grows with batch size)
         + context_tokens * kv_bytes_per_token / bandwidth       (grows with context)
         + prefill_tokens * per_prompt_token_compute             (grows with prompt tokens)
         + prefill_token_pairs * attention_compute               (quadratic part of prefill)

Every term is derived from the model's size (planner) and the GPU's bandwidth (catalog)
and sustained compute (table below), so any catalog model and GPU gets a model; the four
efficiency constants are calibrated so that the published vLLM figures of DESIGN.md section 5
land (see docs/simulator.md for the achieved figures):

    Llama-3-8B on 1x H100 saturates near 37 req/s (ShareGPT-like 202 in / 179 out),
    on 1x A100 near 19 req/s; Llama-3-70B on 4x H100 near 17 req/s, on 4x A100 near 8.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from llmscale.api import defaults
from llmscale.errors import UserInputError
from llmscale.planner import ModelArchitecture, get_gpu, plan, resolve_model
from llmscale.planner.pipeline_replica import group_cold_start_seconds, pipeline_terms
from llmscale.planner.quantization import DTYPE_BYTES

GIB = 1024**3

# Dense bf16 throughput that vLLM-class kernels sustain (TFLOP/s per GPU). Not the data
# sheet peak: the H100/A100 ratio of published vLLM serving benchmarks is ~2, not the 3.2
# of the data sheets, so these are "achieved" figures (H100 ~60 % of 989, A100 ~85 % of 312).
SUSTAINED_TFLOPS: dict[str, float] = {
    "H200": 640.0,
    "H100-80GB": 600.0,
    "A100-80GB": 265.0,
    "A100-40GB": 255.0,
    "L40S": 190.0,
    "L4": 65.0,
    "A10G": 65.0,
    "T4": 30.0,
    "RTX-4090": 85.0,
}
DEFAULT_SUSTAINED_TFLOPS = 100.0

# Calibration constants (see module docstring).
HBM_EFFICIENCY = 0.85  # fraction of data-sheet bandwidth a decode step achieves
STEP_OVERHEAD_SECONDS = 0.0025  # scheduler, sampling and launch cost of one engine step
TP_SYNC_SECONDS_PER_LAYER = 0.00003  # all-reduce latency per layer when tensor parallel
DECODE_COMPUTE_EFFICIENCY = 0.40  # decode GEMMs are skinny: well below sustained FLOP/s
PREFILL_COMPUTE_EFFICIENCY = 0.85  # prefill GEMMs are fat
TP_SCALING_EFFICIENCY = 0.90  # each extra GPU adds 90 % of one GPU's compute

# vLLM defaults.
DEFAULT_MAX_NUM_SEQS = 256
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192  # chunked-prefill token budget per step
DEFAULT_BLOCK_SIZE_TOKENS = 16

# Cold start from pod creation to Ready, by weight size: container start, CUDA init and
# graph capture (~31 s) plus loading weights from local disk at ~1.2 GB/s. Gives ~45 s
# for an 8B model and ~150 s for a 70B one (DESIGN.md section 5: 30-60 s and 1.5-4 min).
COLD_START_FIXED_SECONDS = 31.0
COLD_START_SECONDS_PER_GB = 0.85


def default_cold_start_seconds(weights_bytes: float) -> float:
    return COLD_START_FIXED_SECONDS + COLD_START_SECONDS_PER_GB * weights_bytes / 1e9


@dataclass(frozen=True)
class ReplicaPerformanceModel:
    """Cost parameters of one replica (tensor_parallel_size GPUs). Times in seconds."""

    model_name: str
    gpu_name: str
    tensor_parallel_size: int
    kv_cache_tokens: int  # KV capacity of the whole replica
    max_model_len: int
    weights_bytes: int
    step_overhead_seconds: float
    weight_read_seconds: float
    decode_seconds_per_sequence: float
    kv_read_seconds_per_context_token: float
    prefill_seconds_per_token: float
    prefill_attention_seconds_per_token_pair: float
    gpu_price_per_hour_usd: float = 0.0  # of ONE GPU
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS
    max_num_batched_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS
    block_size_tokens: int = DEFAULT_BLOCK_SIZE_TOKENS
    pipeline_parallel_size: int = 1  # nodes of a multi-node replica (planner/pipeline_replica.py)

    # ---- construction ---------------------------------------------------------------------

    @classmethod
    def for_deployment(
        cls,
        model: str | ModelArchitecture,
        gpu: str,
        tensor_parallel_size: int | None = None,
        **plan_options: Any,
    ) -> ReplicaPerformanceModel:
        """The model of `model` on `gpu` (tensor parallel size chosen by the planner if None).

        `plan_options` go to `llmscale.planner.plan` (quantization, max_model_len, ...).
        Unknown model or GPU, or a model that does not fit -> UserInputError.
        """
        architecture = resolve_model(model)
        gpu_spec = get_gpu(gpu)
        sizing = _plan_sizing(architecture, gpu_spec, tensor_parallel_size, plan_options)
        single_node = cls.from_parameters(
            model_name=architecture.name,
            gpu_name=gpu_spec.name,
            tensor_parallel_size=sizing.tensor_parallel_size,
            weights_bytes=sizing.weights_bytes,
            active_parameters=architecture.active_parameter_count(),
            num_layers=architecture.num_hidden_layers,
            attention_width=architecture.q_width,
            kv_bytes_per_token=sizing.kv_bytes_per_token,
            kv_cache_tokens=sizing.kv_cache_tokens,
            max_model_len=sizing.max_model_len,
            hbm_bandwidth_bytes_per_second=gpu_spec.hbm_bandwidth_bytes_per_second,
            gpu_price_per_hour_usd=gpu_spec.price_per_hour_usd,
        )
        return single_node.across_nodes(
            sizing.pipeline_parallel_size, architecture.hidden_size, sizing.activation_dtype_bytes
        )

    def across_nodes(
        self, stages: int, hidden_size: int, activation_dtype_bytes: int
    ) -> ReplicaPerformanceModel:
        """This replica's tensor-parallel node as one of `stages` pipeline stages on as many
        nodes (vLLM's multi-node layout); see planner/pipeline_replica.py for the derivation."""
        if stages == 1:
            return self
        terms = pipeline_terms(stages, hidden_size, activation_dtype_bytes)
        divisor = terms.variable_divisor
        return replace(
            self,
            pipeline_parallel_size=stages,
            step_overhead_seconds=self.step_overhead_seconds + terms.extra_fixed_seconds,
            decode_seconds_per_sequence=self.decode_seconds_per_sequence / divisor
            + terms.transfer_seconds_per_token,
            kv_read_seconds_per_context_token=self.kv_read_seconds_per_context_token / divisor,
            prefill_seconds_per_token=self.prefill_seconds_per_token / divisor
            + terms.transfer_seconds_per_token,
            prefill_attention_seconds_per_token_pair=self.prefill_attention_seconds_per_token_pair / divisor,
        )

    @classmethod
    def from_parameters(
        cls,
        *,
        model_name: str,
        gpu_name: str,
        tensor_parallel_size: int,
        weights_bytes: int,
        active_parameters: int,
        num_layers: int,
        attention_width: int,
        kv_bytes_per_token: int,
        kv_cache_tokens: int,
        max_model_len: int,
        hbm_bandwidth_bytes_per_second: float,
        gpu_price_per_hour_usd: float = 0.0,
        sustained_tflops: float | None = None,
    ) -> ReplicaPerformanceModel:
        """Derive the step costs from sizes and bandwidth (the calibrated formula)."""
        tp = tensor_parallel_size
        bandwidth = hbm_bandwidth_bytes_per_second * tp * HBM_EFFICIENCY
        tflops = sustained_tflops if sustained_tflops is not None else SUSTAINED_TFLOPS.get(gpu_name)
        per_gpu_flops = (tflops if tflops is not None else DEFAULT_SUSTAINED_TFLOPS) * 1e12
        flops = per_gpu_flops * (1.0 + TP_SCALING_EFFICIENCY * (tp - 1))
        flops_per_token = 2.0 * active_parameters
        # Causal attention: each (query, key) pair costs QK^T and PV, 2 FLOPs each, per layer.
        attention_flops_per_pair = 4.0 * num_layers * attention_width
        overhead = STEP_OVERHEAD_SECONDS + (TP_SYNC_SECONDS_PER_LAYER * num_layers if tp > 1 else 0.0)
        return cls(
            model_name=model_name,
            gpu_name=gpu_name,
            tensor_parallel_size=tp,
            kv_cache_tokens=kv_cache_tokens,
            max_model_len=max_model_len,
            weights_bytes=weights_bytes,
            step_overhead_seconds=overhead,
            weight_read_seconds=weights_bytes / bandwidth,
            decode_seconds_per_sequence=flops_per_token / (flops * DECODE_COMPUTE_EFFICIENCY),
            kv_read_seconds_per_context_token=kv_bytes_per_token / bandwidth,
            prefill_seconds_per_token=flops_per_token / (flops * PREFILL_COMPUTE_EFFICIENCY),
            prefill_attention_seconds_per_token_pair=attention_flops_per_pair
            / (flops * PREFILL_COMPUTE_EFFICIENCY),
            gpu_price_per_hour_usd=gpu_price_per_hour_usd,
        )

    def with_limits(
        self, *, max_num_seqs: int | None = None, max_num_batched_tokens: int | None = None
    ) -> ReplicaPerformanceModel:
        """The same replica with other vLLM scheduler limits (--max-num-seqs, --max-num-batched-tokens)."""
        return replace(
            self,
            max_num_seqs=max_num_seqs if max_num_seqs is not None else self.max_num_seqs,
            max_num_batched_tokens=(
                max_num_batched_tokens if max_num_batched_tokens is not None else self.max_num_batched_tokens
            ),
        )

    # ---- step costs -----------------------------------------------------------------------

    @property
    def fixed_step_seconds(self) -> float:
        """Cost of any step, however small: overhead plus one read of the weights."""
        return self.step_overhead_seconds + self.weight_read_seconds

    @property
    def cold_start_seconds(self) -> float:
        """Pod creation to Ready; a multi-node group loads its stages in parallel, then forms."""
        return group_cold_start_seconds(
            self.pipeline_parallel_size,
            default_cold_start_seconds(self.weights_bytes),
            COLD_START_FIXED_SECONDS,
        )

    @property
    def gpus(self) -> int:
        """All GPUs of one replica (every node of a multi-node group): what GPU-hours count."""
        return self.tensor_parallel_size * self.pipeline_parallel_size

    def prefill_compute_seconds(self, prompt_tokens: float, context_before_tokens: float = 0.0) -> float:
        """Marginal cost, inside a step, of `prompt_tokens` prompt tokens that follow
        `context_before_tokens` already-prefilled tokens of the same sequence (a chunk)."""
        pairs = prompt_tokens * (context_before_tokens + (prompt_tokens + 1) / 2.0)
        return (
            prompt_tokens * self.prefill_seconds_per_token
            + pairs * self.prefill_attention_seconds_per_token_pair
        )

    def prefill_seconds(self, prompt_tokens: int) -> float:
        """Time to the first token of a `prompt_tokens` prompt on an idle replica (one step)."""
        return self.fixed_step_seconds + self.prefill_compute_seconds(prompt_tokens)

    def decode_step_seconds(self, batch_size: int, context_tokens: int) -> float:
        """One decode iteration of `batch_size` sequences holding `context_tokens` KV tokens
        in total (summed over the batch, not per sequence)."""
        return (
            self.fixed_step_seconds
            + batch_size * self.decode_seconds_per_sequence
            + context_tokens * self.kv_read_seconds_per_context_token
        )

    def mixed_step_seconds(
        self, decode_sequences: int, context_tokens: int, prefill_tokens: int, prefill_token_pairs: float
    ) -> float:
        """A chunked-prefill step: decodes plus prompt chunks (`prefill_token_pairs` = attention
        pairs of the chunks, see prefill_compute_seconds)."""
        return (
            self.decode_step_seconds(decode_sequences, context_tokens)
            + prefill_tokens * self.prefill_seconds_per_token
            + prefill_token_pairs * self.prefill_attention_seconds_per_token_pair
        )

    # ---- capacity -------------------------------------------------------------------------

    def saturated_batch_size(self, mean_input_tokens: float, mean_output_tokens: float) -> int:
        """Sequences that run at once when the replica is saturated: max_num_seqs, or fewer
        if the KV cache cannot hold that many whole sequences."""
        per_sequence = max(1.0, mean_input_tokens + mean_output_tokens)
        return max(1, min(self.max_num_seqs, int(self.kv_cache_tokens // per_sequence)))

    def saturation_requests_per_second(self, mean_input_tokens: float, mean_output_tokens: float) -> float:
        """Throughput with an unbounded queue: every step decodes a full batch and the prompt
        work of the arriving requests shares the steps (chunked prefill)."""
        batch = self.saturated_batch_size(mean_input_tokens, mean_output_tokens)
        decode_steps = max(0.0, mean_output_tokens - 1.0)  # the prefill step yields the first token
        mean_context = mean_input_tokens + mean_output_tokens / 2.0
        step = self.decode_step_seconds(batch, int(batch * mean_context))
        seconds_per_request = decode_steps * step / batch + self.prefill_compute_seconds(mean_input_tokens)
        if decode_steps == 0.0:
            seconds_per_request += self.fixed_step_seconds  # prefill-only requests still need a step
        return 1.0 / seconds_per_request

    def decode_tokens_per_second(self, batch_size: int, mean_context_tokens: float) -> float:
        step = self.decode_step_seconds(batch_size, int(batch_size * mean_context_tokens))
        return batch_size / step

    def itl_floor_seconds(self) -> float:
        return self.decode_step_seconds(1, 0)

    def describe(self) -> dict[str, float | int | str]:
        return {
            "model": self.model_name,
            "gpu": self.gpu_name,
            "tensor_parallel_size": self.tensor_parallel_size,
            "pipeline_parallel_size": self.pipeline_parallel_size,
            "kv_cache_tokens": self.kv_cache_tokens,
            "max_num_seqs": self.max_num_seqs,
            "fixed_step_ms": round(self.fixed_step_seconds * 1e3, 3),
            "decode_ms_per_sequence": round(self.decode_seconds_per_sequence * 1e3, 4),
            "prefill_ms_per_1k_tokens": round(self.prefill_compute_seconds(1000) * 1e3, 2),
            "cold_start_seconds": round(self.cold_start_seconds, 1),
        }


@dataclass(frozen=True)
class _Sizing:
    tensor_parallel_size: int
    weights_bytes: int
    kv_bytes_per_token: int
    kv_cache_tokens: int
    max_model_len: int
    pipeline_parallel_size: int = 1
    activation_dtype_bytes: int = 2


def _plan_sizing(
    architecture: Any, gpu_spec: Any, tensor_parallel_size: int | None, options: dict[str, Any]
) -> _Sizing:
    """Sizes from the planner: the same KV capacity `llmscale plan` reports."""
    result = plan(architecture, gpu_spec, gpus=tensor_parallel_size, **options)
    if not result.fits:
        raise UserInputError(f"--model: {architecture.name} does not fit on {gpu_spec.name}: {result.reason}")
    return _Sizing(
        tensor_parallel_size=int(result.tensor_parallel_size),
        weights_bytes=int(result.weights_gib * GIB),
        kv_bytes_per_token=int(result.kv_bytes_per_token),
        kv_cache_tokens=int(result.kv_cache_tokens),
        max_model_len=int(result.max_model_len),
        pipeline_parallel_size=int(result.pipeline_parallel_size),
        activation_dtype_bytes=DTYPE_BYTES[result.dtype],
    )


def capacity_prior(
    model: ReplicaPerformanceModel,
    prompt_tokens: float = defaults.PRIOR_PROMPT_TOKENS,
    generation_tokens: float = defaults.PRIOR_GENERATION_TOKENS,
    replica_capacity_rps: float | None = None,
) -> dict[str, float]:
    """ScalingPolicy capacity fields from the performance model, at the given request lengths.

    Prefill throughput is measured at the reference prompt length (it includes the quadratic
    attention part); decode throughput is what is left of the saturation request time, so that
    one request of the reference lengths costs exactly 1 / saturation rate replica-seconds.
    The target utilisation is `replica_capacity_rps` (spec.scaling.capacityHint) as a share of
    saturation when given, else the default prior. The operator and the simulator both call this
    through `llmscale.scaling.policy_from_spec`, with the documented constant lengths.
    """
    prompt = max(1.0, prompt_tokens)
    generation = max(1.0, generation_tokens)
    saturation_rps = model.saturation_requests_per_second(prompt, generation)
    prefill_seconds = model.prefill_compute_seconds(prompt)
    decode_seconds = max(1.0 / saturation_rps - prefill_seconds, 0.05 / saturation_rps)
    utilization = defaults.TARGET_UTILIZATION
    if replica_capacity_rps is not None and replica_capacity_rps > 0:
        utilization = min(1.0, max(0.05, replica_capacity_rps / saturation_rps))
    return {
        "capacity_prompt_tokens_per_second": prompt / prefill_seconds,
        "capacity_generation_tokens_per_second": generation / decode_seconds,
        "target_utilization": utilization,
    }


def ceil_div(numerator: float, denominator: float) -> int:
    return math.ceil(numerator / denominator - 1e-9)

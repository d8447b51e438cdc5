"""Invariants of plan() over the whole catalog (hypothesis picks models, GPUs and settings)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from llmscale.errors import UserInputError
from llmscale.planner import GPU_CATALOG, MODEL_ALIASES, plan, resolve_model

models = st.sampled_from(sorted(MODEL_ALIASES))
gpus = st.sampled_from(sorted(GPU_CATALOG))
quantizations = st.sampled_from([None, "fp8", "awq", "bitsandbytes"])
contexts = st.sampled_from([512, 2048, 4096, 8192])


@settings(max_examples=60, deadline=None)
@given(model=models, gpu=gpus, quantization=quantizations, context=contexts)
def test_plan_invariants(model: str, gpu: str, quantization: str | None, context: int) -> None:
    try:
        result = plan(model, gpu, quantization=quantization, max_model_len=context)
    except UserInputError:
        return  # impossible combination (fp8 on T4, a pre-quantised checkpoint, ...): covered elsewhere
    assert result.kv_cache_tokens == 16 * result.kv_cache_blocks >= 0
    assert result.fits == (result.max_concurrent_sequences >= 1)
    assert result.fits == (result.max_fitting_model_len >= result.max_model_len)
    assert (result.reason is None) == result.fits
    assert result.gpu_cost_per_hour == round(result.gpus * result.gpu_price_per_hour_usd, 4)
    assert result.gpus == result.gpus_per_node * result.nodes_per_replica
    assert result.nodes_per_replica <= result.max_nodes_per_replica
    if result.nodes_per_replica > 1:
        # several nodes only when no single node holds the model
        single = plan(model, gpu, quantization=quantization, max_model_len=context, max_nodes=1)
        assert not single.fits
    if resolve_model(model).sliding_window is None:
        assert result.max_concurrent_sequences == result.kv_cache_blocks // -(-context // 16)
    if result.fits:
        # no smaller valid tensor-parallel size fits
        for smaller in (1, 2, 4, 8):
            if smaller >= result.tensor_parallel_size:
                break
            try:
                assert not plan(
                    model, gpu, gpus=smaller, quantization=quantization, max_model_len=context
                ).fits
            except UserInputError:
                continue  # not a valid size for this model


@settings(max_examples=40, deadline=None)
@given(
    model=models,
    gpu=gpus,
    low=st.floats(min_value=0.5, max_value=0.95),
    extra=st.floats(min_value=0.0, max_value=0.05),
)
def test_more_memory_never_means_less_kv_cache(model: str, gpu: str, low: float, extra: float) -> None:
    try:
        first = plan(model, gpu, gpus=8 if resolve_model(model).num_attention_heads % 8 == 0 else 1,
                     max_model_len=512, gpu_memory_utilization=low)  # fmt: skip
    except UserInputError:
        return
    second = plan(
        model,
        gpu,
        gpus=first.gpus_per_node,
        nodes=first.nodes_per_replica,
        max_model_len=512,
        gpu_memory_utilization=low + extra,
    )
    assert second.kv_cache_tokens >= first.kv_cache_tokens
    assert second.max_concurrent_sequences >= first.max_concurrent_sequences

"""llmscale.planner: will a model fit a GPU under vLLM, on how many GPUs, at what cost?

Pure: no I/O except reading a config.json path the caller passes in. See docs/planner.md.
"""

from __future__ import annotations

from llmscale.planner.architecture import ModelArchitecture
from llmscale.planner.catalog import (
    KNOWN_MODELS,
    MODEL_ALIASES,
    UnknownModelError,
    known_model_names,
    resolve_model,
)
from llmscale.planner.gpus import GPU_CATALOG, GPUSpec, get_gpu, gpu_for_gfd_product
from llmscale.planner.plan import ContextTooLongError, Plan, plan, tensor_parallel_problem

__all__ = [
    "GPU_CATALOG",
    "KNOWN_MODELS",
    "MODEL_ALIASES",
    "ContextTooLongError",
    "GPUSpec",
    "ModelArchitecture",
    "Plan",
    "UnknownModelError",
    "get_gpu",
    "gpu_for_gfd_product",
    "known_model_names",
    "plan",
    "resolve_model",
    "tensor_parallel_problem",
]

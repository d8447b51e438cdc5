"""The LLMDeployment API (llmscale.dev/v1alpha1): pydantic models and CRD generation.

Pure: no Kubernetes client here. Import the models from this package.
"""

from __future__ import annotations

from llmscale.api.deployment import (
    LLMDeployment,
    LLMDeploymentSpec,
    ModelCacheSpec,
    SecretKeyRef,
)
from llmscale.api.spec import (
    GPU_PRODUCTS,
    LOOP_OWNED_STRATEGIES,
    STRATEGIES,
    EngineSpec,
    GpuSpec,
    ModelSpec,
    ResourcesSpec,
    ScalingSpec,
    SloSpec,
)
from llmscale.api.status import (
    CONDITION_TYPES,
    Condition,
    DecisionRecord,
    LLMDeploymentStatus,
    PlanStatus,
)

__all__ = [
    "CONDITION_TYPES",
    "GPU_PRODUCTS",
    "LOOP_OWNED_STRATEGIES",
    "STRATEGIES",
    "Condition",
    "DecisionRecord",
    "EngineSpec",
    "GpuSpec",
    "LLMDeployment",
    "LLMDeploymentSpec",
    "LLMDeploymentStatus",
    "ModelCacheSpec",
    "ModelSpec",
    "PlanStatus",
    "ResourcesSpec",
    "ScalingSpec",
    "SecretKeyRef",
    "SloSpec",
]

"""Pure builders of the Kubernetes objects an LLMDeployment owns, and the fit check behind them."""

from __future__ import annotations

from llmscale.resources.deployment import build_deployment, pod_template, vllm_args
from llmscale.resources.fit import FitVerdict, evaluate_fit, plan_status
from llmscale.resources.labels import (
    common_labels,
    endpoint_url,
    owner_reference,
    selector_labels,
    selector_string,
)
from llmscale.resources.service import build_pdb, build_pod_monitor, build_service, wants_pdb
from llmscale.resources.serving import ServingConfig, resolve_serving

__all__ = [
    "FitVerdict",
    "ServingConfig",
    "build_deployment",
    "build_pdb",
    "build_pod_monitor",
    "build_service",
    "common_labels",
    "endpoint_url",
    "evaluate_fit",
    "owner_reference",
    "plan_status",
    "pod_template",
    "resolve_serving",
    "selector_labels",
    "selector_string",
    "vllm_args",
    "wants_pdb",
]

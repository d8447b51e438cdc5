"""Every default of the LLMDeployment API, in one place.

The pydantic models, the generated CRD (API-server defaulting), the resource
builders and the docs all read these constants; nothing else hard-codes a default.
"""

from __future__ import annotations

from typing import Final

API_GROUP: Final = "llmscale.dev"
API_VERSION: Final = "v1alpha1"
KIND: Final = "LLMDeployment"
PLURAL: Final = "llmdeployments"
SINGULAR: Final = "llmdeployment"
SHORT_NAMES: Final = ("llmdep",)
CATEGORIES: Final = ("llmscale",)

# vLLM's OpenAI-compatible server image; pinned so a rollout never changes engines silently.
ENGINE_IMAGE: Final = "vllm/vllm-openai:v0.11.0"
ENGINE_DTYPE: Final = "auto"
# vLLM's own default: the fraction of each GPU's memory the engine may claim.
GPU_MEMORY_UTILIZATION: Final = 0.9
ENGINE_PORT: Final = 8000
ENGINE_PORT_NAME: Final = "http"

GPU_COUNT_WHEN_UNPLANNED: Final = 1

SCALING_STRATEGY: Final = "Auto"
SCALING_MODE: Final = "Active"
MAX_REPLICAS: Final = 8
SLO_TTFT_P95: Final = "2s"
SLO_ITL_P95: Final = "100ms"
SLO_OBJECTIVE: Final = 0.99

HF_TOKEN_SECRET_KEY: Final = "HF_TOKEN"
ARCHITECTURE_CONFIGMAP_KEY: Final = "config.json"
# vLLM (through huggingface_hub) caches downloads under $HF_HOME.
MODEL_CACHE_MOUNT_PATH: Final = "/root/.cache/huggingface"

# Seconds between the pod being marked terminating and SIGTERM reaching vLLM: long enough for
# kube-proxy/EndpointSlice consumers and the gateway to stop sending new requests (vLLM has no
# drain endpoint, so the only safe drain is "stop routing, then wait").
PRESTOP_DRAIN_SECONDS: Final = 15
# Extra time after SIGTERM for requests already running, when no ITL SLO sizes it.
IN_FLIGHT_GRACE_SECONDS: Final = 120
IN_FLIGHT_GRACE_MIN_SECONDS: Final = 30
IN_FLIGHT_GRACE_MAX_SECONDS: Final = 900

# Startup probe: model loading takes minutes; budget = base + weights / load throughput.
STARTUP_BASE_SECONDS: Final = 120
STARTUP_LOAD_BYTES_PER_SECOND: Final = 200 * 1024**2  # pessimistic cold download + load: 200 MiB/s
STARTUP_MAX_SECONDS: Final = 3600
STARTUP_UNKNOWN_MODEL_SECONDS: Final = 1800
PROBE_PERIOD_SECONDS: Final = 10

# /dev/shm for NCCL when tensor parallel > 1; 1 GiB per GPU is what NCCL needs with headroom.
SHM_BYTES_PER_GPU: Final = 1024**3


def min_replicas_for(strategy: str) -> int:
    """The minReplicas a strategy implies when the spec leaves it out.

    ScaleToZero and Auto may release every GPU (0); Warm and Autoscaled keep one replica.
    """
    return 0 if strategy in ("ScaleToZero", "Auto") else 1


# Most nodes one replica may span (spec.resources.maxNodesPerReplica): Llama-3.1-405B in bf16
# needs 2 nodes of 8 x 80 GB; 4 leaves room for long contexts or smaller GPUs while bounding
# how many nodes fail and scale together. Same value as planner.pipeline.DEFAULT_MAX_NODES_PER_REPLICA.
MAX_NODES_PER_REPLICA: Final = 4

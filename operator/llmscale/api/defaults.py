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
# vLLM (through huggingface_hub) caches downloads under $HF_HOME. Outside /root: the pods run as
# a non-root user, who cannot traverse the image's /root (mode 0700).
MODEL_CACHE_MOUNT_PATH: Final = "/var/cache/huggingface"
# The root filesystem is read-only; vLLM, PyTorch, Triton and NCCL write under $HOME and /tmp.
HOME_MOUNT_PATH: Final = "/home/vllm"
TMP_MOUNT_PATH: Final = "/tmp"
# Pinned non-root identity of the vLLM container (restricted Pod Security Standard); the volumes
# are group-owned by FS_GROUP so the user can write them. spec.podSecurityContext overrides.
# A high id (>= 10000) cannot collide with a host account; the same as the operator image's.
RUN_AS_USER: Final = 65532
RUN_AS_GROUP: Final = 65532
FS_GROUP: Final = 65532
# The Hugging Face token is a file, not an environment variable (environment variables leak into
# child processes, /proc/<pid>/environ and crash reports); huggingface_hub reads $HF_TOKEN_PATH.
HF_TOKEN_MOUNT_PATH: Final = "/var/run/secrets/huggingface"
HF_TOKEN_FILE: Final = "token"

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

# Host (not GPU) compute requests of one vLLM pod when spec.resources.cpu/memory are unset
# (docs/api.md, "Compute requests"):
#   cpu    = CPU_BASE_CORES + CPU_CORES_PER_GPU x gpus
#            (the API server with tokenisation and the engine-core loop are one busy core each;
#            every GPU worker process spins one more)
#   memory = HOST_BASE_GIB + HOST_GIB_PER_GPU x gpus + weights + /dev/shm, rounded up to GiB
#            (Python, the tokenizer and the server; a CUDA context, NCCL and PyTorch per worker;
#            the safetensors pages pass through the container's page cache while weights load;
#            the memory-backed /dev/shm counts against the container's memory too)
# The memory limit equals the request: no host-memory overcommit, so a leak is OOM-killed in its
# own container instead of pushing the node into pressure eviction of its neighbours.
# Unknown models (no plan) count weights as the most the GPUs can hold: gpus x memory x util.
CPU_BASE_CORES: Final = 2
CPU_CORES_PER_GPU: Final = 1
HOST_BASE_GIB: Final = 4
HOST_GIB_PER_GPU: Final = 2


def min_replicas_for(strategy: str) -> int:
    """The minReplicas a strategy implies when the spec leaves it out.

    ScaleToZero and Auto may release every GPU (0); Warm and Autoscaled keep one replica.
    """
    return 0 if strategy in ("ScaleToZero", "Auto") else 1

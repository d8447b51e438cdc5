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
# By digest (the v0.11.0 multi-architecture index), so that a moved tag can never change what
# runs; the tag stays for humans. Kubernetes pulls by the digest when both are given.
ENGINE_IMAGE: Final = (
    "vllm/vllm-openai:v0.11.0@sha256:014a95f21c9edf6abe0aea6b07353f96baa4ec291c427bb1176dc7c93a85845c"
)
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

# --- The scaling policy (llmscale.scaling.ScalingPolicy) -----------------------------------------
# `llmscale.scaling.policy_from_spec` turns a spec into the decision core's policy for the operator
# and for `llmscale simulate` alike: strategy, bounds and SLO come from the spec (defaults above),
# everything below from here. The tunable ones may be changed operator-wide (`--scaling-overrides`)
# or per deployment (annotation `llmscale.dev/scaling-overrides`); docs/scaling.md explains each.

# Seconds between two decisions: the operator's tick and the simulator's tick (`--scaling-interval`).
DECISION_INTERVAL_SECONDS: Final = 5.0
# Request lengths the capacity prior assumes until the engines report the real token mix
# (ShareGPT-like chat, as in vLLM's serving benchmarks). Constants on purpose: a deployment
# cannot know its future traffic's lengths, so neither may a backtest of it.
PRIOR_PROMPT_TOKENS: Final = 1000.0
PRIOR_GENERATION_TOKENS: Final = 200.0
# Share of a replica's saturation throughput it may carry while meeting the TTFT SLO (a prior,
# refined online from measured TTFT; spec.scaling.capacityHint replaces it).
TARGET_UTILIZATION: Final = 0.75
# Capacity of one replica when the performance model does not know the model (custom
# architectures): Llama-3-8B on one H100 (~40k prompt tok/s, ~7.5k generated tok/s).
CAPACITY_PROMPT_TOKENS_PER_SECOND: Final = 40_000.0
CAPACITY_GENERATION_TOKENS_PER_SECOND: Final = 7_500.0
# USD per GPU-hour when neither the spec, the operator's price list nor the catalog has a price.
GPU_PRICE_PER_HOUR_USD: Final = 2.0
# Pod creation -> Ready, used until measured, when the performance model has no estimate.
COLD_START_SECONDS: Final = 60.0
# Load averages (Knative KPA: stable 60 s, panic 6 s at 200 %).
STABLE_WINDOW_SECONDS: Final = 60.0
PANIC_WINDOW_SECONDS: Final = 6.0
PANIC_THRESHOLD: Final = 2.0
# Scale-down only when every recommendation of this window allows it.
SCALE_DOWN_DELAY_SECONDS: Final = 120.0
HYSTERESIS: Final = 0.1
# SLO headroom (scaling/scaler.update_slo_headroom): one replica added to the scale-down bound
# per this many seconds during which the measured TTFT or ITL p95 is over its target, at most the
# maximum, decaying with the time constant while the SLO holds. Chosen by leave-one-scenario-out
# over the backtest suite (docs/scaling.md).
SLO_HEADROOM_RISE_SECONDS: Final = 100.0
SLO_HEADROOM_MAX_REPLICAS: Final = 1.0
SLO_HEADROOM_DECAY_SECONDS: Final = 900.0
MAX_SCALE_UP_RATE: Final = 10.0
MAX_SCALE_DOWN_RATE: Final = 2.0
# Positive proof of idleness must last this long before scaling to zero.
IDLE_WINDOW_SECONDS: Final = 60.0
# Forecast: Holt level/trend time constants, the sigmas of recent upside surprises the scaler
# provisions for above the point forecast (1.0: one-sided 84 %; chosen by leave-one-scenario-out
# over the backtest suite from the normal quantiles 0, 0.67, 1.0, 1.28, 1.64: docs/scaling.md),
# time-of-day bins.
FORECAST_LEVEL_SECONDS: Final = 30.0
FORECAST_TREND_SECONDS: Final = 180.0
FORECAST_UNCERTAINTY_Z: Final = 1.0
PROFILE_BIN_SECONDS: Final = 900.0
# Strategy Auto: keep a concrete strategy this long; observe this long before Warm or ScaleToZero.
STRATEGY_DWELL_SECONDS: Final = 600.0
MIN_HISTORY_SECONDS: Final = 300.0

# --- `llmscale simulate` without --deployment ------------------------------------------------------
# The deployment it simulates when no manifest is given (a manifest's fields win; flags win over both).
SIMULATE_MODEL: Final = "llama-3-8b"
SIMULATE_GPU: Final = "H100-80GB"
# Room for traces replayed at a high --rate-scale (a manifest's maxReplicas wins).
SIMULATE_MAX_REPLICAS: Final = 64

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


# Most nodes one replica may span (spec.resources.maxNodesPerReplica): Llama-3.1-405B in bf16
# needs 2 nodes of 8 x 80 GB; 4 leaves room for long contexts or smaller GPUs while bounding
# how many nodes fail and scale together. Same value as planner.pipeline.DEFAULT_MAX_NODES_PER_REPLICA.
MAX_NODES_PER_REPLICA: Final = 4

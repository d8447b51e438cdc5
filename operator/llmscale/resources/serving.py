"""The concrete shape of one replica: GPUs, parallelism, context, probe and drain budgets.

Resolved once from the spec and the planner's verdict, then handed to every builder, so the
Deployment, the PDB and the status agree on the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmscale.api import LLMDeploymentSpec, defaults
from llmscale.planner import Plan, get_gpu


@dataclass(frozen=True)
class ServingConfig:
    model_name: str
    served_name: str
    tensor_parallel_size: int
    pipeline_parallel_size: int  # stages: within a pod (gpu.count / TP) or one per node (multi-node)
    gpu_count: int  # GPUs each pod requests
    gpu_product: str  # catalog name, e.g. H100-80GB
    gfd_product: str  # node label value, e.g. NVIDIA-H100-80GB-HBM3
    max_model_len: int | None  # None: leave it to vLLM (model unknown to the planner)
    startup_budget_seconds: int
    termination_grace_seconds: int
    cpu_request: str  # Kubernetes quantity: spec.resources.cpu, else host_cpu_cores()
    memory_request: str  # Kubernetes quantity, also the limit: spec.resources.memory, else host_memory_gib()
    nodes_per_replica: int = 1  # > 1: a LeaderWorkerSet group of this many pods, one per node

    @property
    def multi_node(self) -> bool:
        return self.nodes_per_replica > 1

    @property
    def gpus_per_replica(self) -> int:
        """All GPUs of one replica (every pod of a group): what a GPU-hour is counted on."""
        return self.gpu_count * self.nodes_per_replica


def resolve_serving(spec: LLMDeploymentSpec, plan: Plan | None) -> ServingConfig:
    gpu = get_gpu(spec.resources.gpu.product)
    count = spec.resources.gpu.count
    tensor_parallel = spec.engine.tensor_parallel_size
    if tensor_parallel is None:
        # The planner picked the smallest valid size (or planned exactly gpu.count GPUs).
        tensor_parallel = plan.tensor_parallel_size if plan is not None else (count or 1)
    if count is None:
        count = tensor_parallel
    nodes = plan.nodes_per_replica if plan is not None and plan.fits else 1
    # each pod of a multi-node group holds (and loads into host memory) its stage's share
    weights_gib = _weights_gib(plan, count, gpu.memory_gib * spec.engine.gpu_memory_utilization) / nodes
    max_model_len = spec.engine.max_model_len
    if max_model_len is None and plan is not None:
        max_model_len = plan.max_model_len
    return ServingConfig(
        model_name=spec.model.name,
        served_name=spec.model.served_name or spec.model.name,
        tensor_parallel_size=tensor_parallel,
        pipeline_parallel_size=nodes if nodes > 1 else max(1, count // tensor_parallel),
        gpu_count=count,
        gpu_product=gpu.name,
        gfd_product=gpu.gfd_product,
        max_model_len=max_model_len,
        startup_budget_seconds=startup_budget_seconds(plan),
        termination_grace_seconds=termination_grace_seconds(spec, max_model_len),
        cpu_request=spec.resources.cpu or str(host_cpu_cores(count)),
        memory_request=spec.resources.memory or f"{host_memory_gib(count, weights_gib)}Gi",
        nodes_per_replica=nodes,
    )


def shm_gib(gpu_count: int) -> int:
    """Size of the memory-backed /dev/shm: NCCL's tensor-parallel buffers, per GPU."""
    return gpu_count * defaults.SHM_BYTES_PER_GPU // 1024**3


def host_cpu_cores(gpu_count: int) -> int:
    """CPU request in cores (formula in llmscale.api.defaults and docs/api.md)."""
    return defaults.CPU_BASE_CORES + defaults.CPU_CORES_PER_GPU * gpu_count


def host_memory_gib(gpu_count: int, weights_gib: float) -> int:
    """Host memory request and limit in GiB (formula in llmscale.api.defaults and docs/api.md)."""
    total = defaults.HOST_BASE_GIB + defaults.HOST_GIB_PER_GPU * gpu_count + weights_gib + shm_gib(gpu_count)
    return math.ceil(total)


def _weights_gib(plan: Plan | None, gpu_count: int, usable_gib_per_gpu: float) -> float:
    if plan is not None:
        return plan.weights_gib
    # Unknown model: the most its GPUs can hold, so loading is never OOM-killed for lack of it.
    return gpu_count * usable_gib_per_gpu


def startup_budget_seconds(plan: Plan | None) -> int:
    """How long the startup probe lets vLLM download and load the weights before restarting it.

    Base (engine start, CUDA graph capture) + weights at a pessimistic 200 MiB/s; unknown models
    get a flat 30 minutes. Rounded up to whole probe periods.
    """
    if plan is None:
        seconds = float(defaults.STARTUP_UNKNOWN_MODEL_SECONDS)
    else:
        weights_bytes = plan.weights_gib * 1024**3
        seconds = defaults.STARTUP_BASE_SECONDS + weights_bytes / defaults.STARTUP_LOAD_BYTES_PER_SECOND
    seconds = min(seconds, float(defaults.STARTUP_MAX_SECONDS))
    period = defaults.PROBE_PERIOD_SECONDS
    return math.ceil(seconds / period) * period


def termination_grace_seconds(spec: LLMDeploymentSpec, max_model_len: int | None) -> int:
    """preStop drain + the longest request that still meets the ITL SLO (maxModelLen x itlP95).

    vLLM finishes running requests after SIGTERM; the grace period must cover the longest one.
    Clamped to [30 s, 15 min] after the drain; spec.terminationGracePeriodSeconds overrides.
    """
    if spec.termination_grace_period_seconds is not None:
        return spec.termination_grace_period_seconds
    if max_model_len is None:
        in_flight = float(defaults.IN_FLIGHT_GRACE_SECONDS)
    else:
        in_flight = max_model_len * spec.scaling.slo.itl_p95_seconds
    in_flight = min(
        max(in_flight, defaults.IN_FLIGHT_GRACE_MIN_SECONDS), defaults.IN_FLIGHT_GRACE_MAX_SECONDS
    )
    return defaults.PRESTOP_DRAIN_SECONDS + math.ceil(in_flight)

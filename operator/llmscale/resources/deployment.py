"""The vLLM Deployment of an LLMDeployment (pure: spec in, manifest dict out)."""

from __future__ import annotations

import math
from typing import Any

from llmscale.api import LLMDeployment, defaults
from llmscale.resources import labels, podsecurity
from llmscale.resources.serving import ServingConfig, shm_gib

SHM_VOLUME = "dshm"
CACHE_VOLUME = "model-cache"
HOME_VOLUME = "home"
TOKEN_VOLUME = "hf-token"
TMP_VOLUME = "tmp"
# HOME holds vLLM's, Triton's and torch.compile's caches (compiled kernels: hundreds of MiB)
HOME_SIZE_LIMIT = "4Gi"
TMP_SIZE_LIMIT = "4Gi"


def vllm_args(resource: LLMDeployment, serving: ServingConfig) -> list[str]:
    """`vllm serve` arguments (after `vllm serve`): model first, managed flags, then extraArgs."""
    engine = resource.spec.engine
    args = [
        serving.model_name,
        "--host",
        "0.0.0.0",
        "--port",
        str(defaults.ENGINE_PORT),
        "--served-model-name",
        serving.served_name,
        "--tensor-parallel-size",
        str(serving.tensor_parallel_size),
    ]
    if serving.pipeline_parallel_size > 1:
        args += ["--pipeline-parallel-size", str(serving.pipeline_parallel_size)]
    if serving.max_model_len is not None:
        args += ["--max-model-len", str(serving.max_model_len)]
    args += ["--gpu-memory-utilization", _number(engine.gpu_memory_utilization)]
    if engine.quantization is not None:
        args += ["--quantization", engine.quantization]
    if engine.dtype != defaults.ENGINE_DTYPE:
        args += ["--dtype", engine.dtype]
    if resource.spec.model.revision is not None:
        args += ["--revision", resource.spec.model.revision]
    return args + list(engine.extra_args)


def _number(value: float) -> str:
    return format(value, "g")


def _env(resource: LLMDeployment) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "HF_HOME", "value": defaults.MODEL_CACHE_MOUNT_PATH},
        *podsecurity.writable_env(),
    ]
    if resource.spec.hf_token_secret_ref is not None:
        token_file = f"{defaults.HF_TOKEN_MOUNT_PATH}/{defaults.HF_TOKEN_FILE}"
        env.append({"name": "HF_TOKEN_PATH", "value": token_file})
    managed = {item["name"] for item in env}
    # User env comes after ours; a user entry with a managed name is dropped (ours wins).
    env += [dict(item) for item in resource.spec.env or () if item.get("name") not in managed]
    return env


def _resources(serving: ServingConfig) -> dict[str, Any]:
    gpus = str(serving.gpu_count)
    # No CPU limit: CFS throttling would stall the engine loop between decode steps (inter-token
    # latency spikes); the request reserves the cores. Memory limit = request (no overcommit).
    memory = serving.memory_request
    return {
        "limits": {labels.GPU_RESOURCE: gpus, "memory": memory},
        "requests": {labels.GPU_RESOURCE: gpus, "cpu": serving.cpu_request, "memory": memory},
    }


def _probe(path: str, period: int, failures: int, timeout: int = 5) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": defaults.ENGINE_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def _volumes(resource: LLMDeployment, serving: ServingConfig) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        # NCCL (tensor parallel) and PyTorch workers exchange tensors through /dev/shm;
        # the container runtime's 64 MiB default is far too small. Counted in the memory request.
        {
            "name": SHM_VOLUME,
            "emptyDir": {"medium": "Memory", "sizeLimit": f"{shm_gib(serving.gpu_count)}Gi"},
        },
    ]
    cache = resource.spec.model_cache
    if cache is not None and cache.persistent_volume_claim is not None:
        pvc = cache.persistent_volume_claim
        volumes.append(
            {
                "name": CACHE_VOLUME,
                "persistentVolumeClaim": {"claimName": pvc.claim_name, "readOnly": pvc.read_only},
            }
        )
    else:
        empty_dir: dict[str, Any] = {}
        if cache is not None and cache.empty_dir is not None:
            if cache.empty_dir.size_limit is not None:
                empty_dir["sizeLimit"] = cache.empty_dir.size_limit
            if cache.empty_dir.medium:
                empty_dir["medium"] = cache.empty_dir.medium
        volumes.append({"name": CACHE_VOLUME, "emptyDir": empty_dir})
    # the root filesystem is read-only: these are the only other places vLLM writes
    volumes.append({"name": HOME_VOLUME, "emptyDir": {"sizeLimit": HOME_SIZE_LIMIT}})
    volumes.append({"name": TMP_VOLUME, "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}})
    token = resource.spec.hf_token_secret_ref
    if token is not None:
        # readable by the pod's group only (fsGroup owns projected Secret files)
        items = [{"key": token.key, "path": defaults.HF_TOKEN_FILE}]
        volumes.append(
            {"name": TOKEN_VOLUME, "secret": {"secretName": token.name, "items": items, "defaultMode": 0o440}}
        )
    return volumes


def _affinity(resource: LLMDeployment, serving: ServingConfig) -> dict[str, Any]:
    """GPU product node affinity, ANDed into each of the user's node selector terms."""
    product = {
        "key": labels.GPU_PRODUCT_NODE_LABEL,
        "operator": "In",
        "values": [serving.gfd_product],
    }
    user = dict(resource.spec.affinity or {})
    node_affinity = dict(user.get("nodeAffinity") or {})
    required = dict(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = [dict(term) for term in required.get("nodeSelectorTerms") or ()] or [{}]
    for term in terms:
        term["matchExpressions"] = [*(term.get("matchExpressions") or ()), product]
    required["nodeSelectorTerms"] = terms
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    user["nodeAffinity"] = node_affinity
    return user


def _tolerations(resource: LLMDeployment) -> list[dict[str, Any]]:
    gpu = {"key": labels.GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}
    return [gpu, *(dict(t) for t in resource.spec.tolerations or () if t != gpu)]


def pod_template(resource: LLMDeployment, serving: ServingConfig) -> dict[str, Any]:
    spec = resource.spec
    name = resource.metadata.name
    pod_labels = {**(spec.pod_labels or {}), **labels.common_labels(name)}
    pod_annotations = {**(spec.pod_annotations or {}), **labels.SCRAPE_ANNOTATIONS}
    startup_failures = max(1, math.ceil(serving.startup_budget_seconds / defaults.PROBE_PERIOD_SECONDS))
    container: dict[str, Any] = {
        "name": labels.CONTAINER_NAME,
        "image": spec.engine.image,
        # explicit (checkov CKV_K8S_15 wants Always; docs/install.md says why not: a 10 GB engine
        # image re-checked at every cold start, and a registry outage would block scale-ups)
        "imagePullPolicy": "IfNotPresent",
        "command": ["vllm", "serve"],
        "args": vllm_args(resource, serving),
        "ports": [
            {"name": defaults.ENGINE_PORT_NAME, "containerPort": defaults.ENGINE_PORT, "protocol": "TCP"}
        ],
        "env": _env(resource),
        "resources": _resources(serving),
        "securityContext": podsecurity.container_security_context(resource),
        "volumeMounts": _volume_mounts(resource),
        # Downloading and loading weights takes minutes: the startup probe holds off liveness
        # until /health answers, for up to the model-sized budget.
        "startupProbe": _probe("/health", defaults.PROBE_PERIOD_SECONDS, startup_failures),
        "readinessProbe": _probe("/health", 5, 3),
        "livenessProbe": _probe("/health", defaults.PROBE_PERIOD_SECONDS, 6),
    }
    # vLLM has no drain endpoint: keep serving while endpoints and the gateway stop routing to
    # this pod, then SIGTERM lets it finish the requests it has. The API server requires the
    # sleep to be shorter than the grace period, so a short user-set grace shortens it.
    drain_seconds = min(defaults.PRESTOP_DRAIN_SECONDS, serving.termination_grace_seconds - 1)
    if drain_seconds >= 1:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": drain_seconds}}}
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "volumes": _volumes(resource, serving),
        "affinity": _affinity(resource, serving),
        "tolerations": _tolerations(resource),
        "terminationGracePeriodSeconds": serving.termination_grace_seconds,
        "securityContext": podsecurity.pod_security_context(resource),
        "automountServiceAccountToken": spec.automount_service_account_token,
        # no Service environment variables: the pods need none, and they leak the namespace's
        # Service addresses into every process
        "enableServiceLinks": False,
    }
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.service_account_name is not None:
        pod_spec["serviceAccountName"] = spec.service_account_name
    if spec.priority_class_name is not None:
        pod_spec["priorityClassName"] = spec.priority_class_name
    if spec.runtime_class_name is not None:
        pod_spec["runtimeClassName"] = spec.runtime_class_name
    if spec.topology_spread_constraints:
        pod_spec["topologySpreadConstraints"] = [dict(c) for c in spec.topology_spread_constraints]
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": ref.name} for ref in spec.image_pull_secrets]
    return {"metadata": {"labels": pod_labels, "annotations": pod_annotations}, "spec": pod_spec}


def _volume_mounts(resource: LLMDeployment) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": SHM_VOLUME, "mountPath": "/dev/shm"},
        {"name": HOME_VOLUME, "mountPath": defaults.HOME_MOUNT_PATH},
        {"name": TMP_VOLUME, "mountPath": defaults.TMP_MOUNT_PATH},
        {
            "name": CACHE_VOLUME,
            "mountPath": defaults.MODEL_CACHE_MOUNT_PATH,
            **({"readOnly": True} if _cache_read_only(resource) else {}),
        },
    ]
    if resource.spec.hf_token_secret_ref is not None:
        mounts.append({"name": TOKEN_VOLUME, "mountPath": defaults.HF_TOKEN_MOUNT_PATH, "readOnly": True})
    return mounts


def _cache_read_only(resource: LLMDeployment) -> bool:
    cache = resource.spec.model_cache
    return bool(cache and cache.persistent_volume_claim and cache.persistent_volume_claim.read_only)


def build_deployment(
    resource: LLMDeployment, serving: ServingConfig, owner: dict[str, Any], replicas: int | None
) -> dict[str, Any]:
    """The Deployment manifest; `replicas=None` leaves the field to another field manager."""
    name = resource.metadata.name
    spec: dict[str, Any] = {
        "selector": {"matchLabels": labels.selector_labels(name)},
        # One extra pod during a rollout, never one fewer: serving capacity holds, at the cost
        # of one replica's GPUs for the rollout's duration.
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
        "revisionHistoryLimit": 3,
        "progressDeadlineSeconds": serving.startup_budget_seconds + 300,
        "template": pod_template(resource, serving),
    }
    if replicas is not None:
        spec = {"replicas": replicas, **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": labels.child_metadata(name, resource.metadata.namespace, owner),
        "spec": spec,
    }

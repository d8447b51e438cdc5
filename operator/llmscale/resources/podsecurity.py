"""The vLLM pod's security posture: the restricted Pod Security Standard by default.

What "restricted" (Kubernetes Pod Security Standards) requires of a pod, and what we set:
non-root (runAsNonRoot, a pinned runAsUser/runAsGroup), no privilege escalation, every Linux
capability dropped, the RuntimeDefault seccomp profile. Beyond the standard: a read-only root
filesystem, with writable emptyDir volumes exactly where vLLM writes (HOME, /tmp, the model
cache, /dev/shm), and no ServiceAccount token (vLLM never calls the Kubernetes API).

The user's spec.podSecurityContext and spec.securityContext are merged key by key over these
defaults; their keys win (a namespace that enforces "restricted" still refuses a weaker pod).
"""

from __future__ import annotations

from typing import Any, Final

from llmscale.api import LLMDeployment, defaults

RUNTIME_DEFAULT_SECCOMP: Final = {"type": "RuntimeDefault"}


def pod_security_context(resource: LLMDeployment) -> dict[str, Any]:
    base: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": defaults.RUN_AS_USER,
        "runAsGroup": defaults.RUN_AS_GROUP,
        # emptyDir and PVC volumes are made group-writable for this group
        "fsGroup": defaults.FS_GROUP,
        # only chown a volume whose root has the wrong owner: a large model cache PVC is not
        # walked file by file at every pod start
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP),
    }
    return {**base, **(resource.spec.pod_security_context or {})}


def container_security_context(resource: LLMDeployment) -> dict[str, Any]:
    base: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": defaults.RUN_AS_USER,
        "runAsGroup": defaults.RUN_AS_GROUP,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP),
    }
    return {**base, **(resource.spec.security_context or {})}


def writable_env() -> list[dict[str, Any]]:
    """Environment that points vLLM's and its libraries' writes at the writable volumes, and
    turns off what would phone home from a bank's network."""
    return [
        {"name": "HOME", "value": defaults.HOME_MOUNT_PATH},
        {"name": "TMPDIR", "value": defaults.TMP_MOUNT_PATH},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
    ]

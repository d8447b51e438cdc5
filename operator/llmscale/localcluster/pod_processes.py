"""The pure half of the pod runner: which pods get a process, with what command and env."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

RUNNER_LABEL = "llmscale.dev/runner"
DEFAULT_GRACE_SECONDS = 30.0


def rule_commands(python: str = sys.executable) -> dict[str, list[str]]:
    """Rule name (value of the `llmscale.dev/runner` label) -> argv."""
    return {
        "emulator": [python, "-m", "llmscale", "emulate", "--pod-env"],
        "http-echo": [python, "-m", "llmscale.localcluster.echo_server"],
    }


def pod_key(pod: Mapping[str, Any]) -> str:
    metadata = pod["metadata"]
    return f"{metadata['namespace']}/{metadata['name']}"


def pod_uid(pod: Mapping[str, Any]) -> str:
    return str(pod["metadata"]["uid"])


def pod_ip(pod: Mapping[str, Any]) -> str | None:
    ip = (pod.get("status") or {}).get("podIP")
    return str(ip) if ip else None


def is_terminating(pod: Mapping[str, Any]) -> bool:
    return pod["metadata"].get("deletionTimestamp") is not None


def wants_process(pod: Mapping[str, Any]) -> bool:
    """A labelled pod with an IP, not terminating and not finished."""
    phase = (pod.get("status") or {}).get("phase")
    return (
        bool(pod["metadata"].get("labels", {}).get(RUNNER_LABEL))
        and pod_ip(pod) is not None
        and not is_terminating(pod)
        and phase not in ("Succeeded", "Failed")
    )


def grace_seconds(pod: Mapping[str, Any]) -> float:
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return float(value) if value is not None else DEFAULT_GRACE_SECONDS


def pod_args(pod: Mapping[str, Any]) -> list[str]:
    """The first container's command followed by its args (what a kubelet would exec)."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    first = containers[0]
    return [str(a) for a in (first.get("command") or [])] + [str(a) for a in (first.get("args") or [])]


def pod_env(pod: Mapping[str, Any], node_labels: Mapping[str, str]) -> dict[str, str]:
    """The LLMSCALE_* variables of interfaces.md ("Pod runner")."""
    metadata = pod["metadata"]
    return {
        "LLMSCALE_POD_IP": pod_ip(pod) or "",
        "LLMSCALE_POD_NAME": str(metadata["name"]),
        "LLMSCALE_POD_NAMESPACE": str(metadata["namespace"]),
        "LLMSCALE_POD_ARGS": json.dumps(pod_args(pod)),
        "LLMSCALE_POD_LABELS": json.dumps(dict(metadata.get("labels") or {}), sort_keys=True),
        "LLMSCALE_POD_ANNOTATIONS": json.dumps(dict(metadata.get("annotations") or {}), sort_keys=True),
        "LLMSCALE_NODE_LABELS": json.dumps(dict(node_labels), sort_keys=True),
    }


def command_for(pod: Mapping[str, Any], rules: Mapping[str, list[str]]) -> list[str] | None:
    rule = pod["metadata"].get("labels", {}).get(RUNNER_LABEL)
    return list(rules[rule]) if rule in rules else None

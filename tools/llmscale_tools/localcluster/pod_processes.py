"""The pure half of the pod runner: which pods get a process, with what command and env."""

from __future__ import annotations

import datetime
import json
import re
import sys
from collections.abc import Mapping
from typing import Any

RUNNER_LABEL = "llmscale.dev/runner"
STARTUP_DELAY_ANNOTATION = "llmscale.dev/startup-delay"
READY_AT_ANNOTATION = "llmscale.dev/ready-at"
DEFAULT_GRACE_SECONDS = 30.0
DEFAULT_STARTUP_DELAY_SECONDS = 1.0
DEFAULT_PORT = 8000
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


ENGINES = ("emulator", "vllm")


def rule_commands(python: str = sys.executable, engine: str = "emulator") -> dict[str, list[str]]:
    """Rule name (value of the `llmscale.dev/runner` label) -> argv.

    `vllm` runs real vLLM (llmscale_tools.localcluster.vllm_pod). `engine` is the cluster session's
    choice for pods labelled `emulator`: "vllm" runs real vLLM for them too (the runner reads
    it from LLMSCALE_POD_ENGINE), so one switch moves a whole demo or test session.
    """
    if engine not in ENGINES:
        raise ValueError(f"LLMSCALE_POD_ENGINE: value {engine!r} is unknown; expected emulator or vllm")
    vllm = [python, "-m", "llmscale_tools.localcluster.vllm_pod"]
    return {
        "emulator": vllm if engine == "vllm" else [python, "-m", "llmscale_tools.emulator", "--pod-env"],
        "vllm": vllm,
        "http-echo": [python, "-m", "llmscale_tools.localcluster.echo_server"],
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


def pre_stop_sleep_seconds(pod: Mapping[str, Any]) -> float:
    """The first container's `lifecycle.preStop.sleep.seconds` (0 when it has none)."""
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    sleep = ((containers[0].get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}
    seconds = sleep.get("seconds")
    return float(seconds) if isinstance(seconds, int | float) and seconds > 0 else 0.0


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
        "LLMSCALE_POD_PORT": str(serving_port(pod)),
    }


# A multi-node replica's worker pod (LeaderWorkerSet) joins its leader's Ray cluster and serves
# no HTTP: an emulated group runs the emulator in the leader only and a plain listener in each
# worker, so the runner's "accepts connections" readiness holds for workers too.
ROLE_LABEL = "llmscale.dev/role"
WORKER_STAND_IN_RULE = "http-echo"


def command_for(pod: Mapping[str, Any], rules: Mapping[str, list[str]]) -> list[str] | None:
    labels = pod["metadata"].get("labels", {})
    rule = labels.get(RUNNER_LABEL)
    if rule == "emulator" and labels.get(ROLE_LABEL) == "worker":
        rule = WORKER_STAND_IN_RULE
    return list(rules[rule]) if rule in rules else None


def parse_go_duration(text: str) -> float | None:
    """Seconds in a Go duration string ("20s", "1m30s", "500ms"); None when it is not one."""
    text = text.strip()
    if text in ("0", ""):
        return 0.0 if text == "0" else None
    position, total = 0, 0.0
    for match in _GO_DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if position == len(text) else None


def startup_delay_seconds(pod: Mapping[str, Any]) -> float:
    """The pod's simulated cold start (annotation; 1 s when absent, as KWOK's stage assumes)."""
    value = (pod["metadata"].get("annotations") or {}).get(STARTUP_DELAY_ANNOTATION)
    parsed = parse_go_duration(str(value)) if value is not None else None
    return parsed if parsed is not None else DEFAULT_STARTUP_DELAY_SECONDS


def serving_port(pod: Mapping[str, Any]) -> int:
    """Where the pod's process listens: `--port` in its args, else its first container port."""
    args = pod_args(pod)
    for index, arg in enumerate(args):
        if arg == "--port" and index + 1 < len(args) and args[index + 1].isdigit():
            return int(args[index + 1])
        if arg.startswith("--port=") and arg.removeprefix("--port=").isdigit():
            return int(arg.removeprefix("--port="))
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    for port in containers[0].get("ports") or []:
        if port.get("containerPort"):
            return int(port["containerPort"])
    return DEFAULT_PORT


def ready_at(pod: Mapping[str, Any], listening_since: datetime.datetime) -> datetime.datetime:
    """When KWOK may mark the pod Ready: its cold start is over and its process listens."""
    created_text = pod["metadata"].get("creationTimestamp")
    if not created_text:
        return listening_since
    created = datetime.datetime.fromisoformat(str(created_text).replace("Z", "+00:00"))
    return max(created + datetime.timedelta(seconds=startup_delay_seconds(pod)), listening_since)


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

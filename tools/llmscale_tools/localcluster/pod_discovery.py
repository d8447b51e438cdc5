"""Pod discovery for Prometheus through `file_sd_configs`.

Debian's `prometheus` package is built without Kubernetes service discovery
(`kubernetes_sd_configs` is rejected as an unknown field), so this small process watches pods
through the apiserver and writes the targets that `kubernetes_sd_configs` (role pod) would
produce, with the same `__meta_kubernetes_*` labels. The relabelling in prometheus_config is
therefore exactly what a real cluster's PodMonitor-style job uses.

Run as `python -m llmscale_tools.localcluster.pod_discovery --kubeconfig K --output F`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger("llmscale.pod-discovery")
WATCH_TIMEOUT_SECONDS = 30
# coalesce bursts (a Deployment scaling by 10) into one file write
WRITE_INTERVAL_SECONDS = 0.2

_INVALID_LABEL_CHARACTERS = re.compile(r"[^a-zA-Z0-9_]")


def sanitize(name: str) -> str:
    """Kubernetes label/annotation name -> Prometheus label name, as kubernetes_sd does."""
    return _INVALID_LABEL_CHARACTERS.sub("_", name)


def target_group(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """One file_sd target group for a pod with an IP (None without one)."""
    metadata = pod["metadata"]
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    ip = status.get("podIP")
    if not ip:
        return None
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    labels: dict[str, str] = {
        "__meta_kubernetes_namespace": str(metadata["namespace"]),
        "__meta_kubernetes_pod_name": str(metadata["name"]),
        "__meta_kubernetes_pod_uid": str(metadata.get("uid", "")),
        "__meta_kubernetes_pod_ip": str(ip),
        "__meta_kubernetes_pod_node_name": str(spec.get("nodeName") or ""),
        "__meta_kubernetes_pod_host_ip": str(status.get("hostIP") or ""),
        "__meta_kubernetes_pod_phase": str(status.get("phase") or ""),
        "__meta_kubernetes_pod_ready": "true" if ready else "false",
    }
    for key, value in (metadata.get("labels") or {}).items():
        labels[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = str(value)
        labels[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
    for key, value in (metadata.get("annotations") or {}).items():
        labels[f"__meta_kubernetes_pod_annotation_{sanitize(key)}"] = str(value)
        labels[f"__meta_kubernetes_pod_annotationpresent_{sanitize(key)}"] = "true"
    return {"targets": [str(ip)], "labels": labels}


def render_targets(pods: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    groups = [g for g in (target_group(p) for p in pods) if g is not None]
    return sorted(
        groups,
        key=lambda g: (g["labels"]["__meta_kubernetes_namespace"], g["labels"]["__meta_kubernetes_pod_name"]),
    )


def write_atomically(path: Path, groups: list[dict[str, Any]]) -> None:
    """Prometheus watches the directory; a rename is seen as one complete new file."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(groups, indent=1))
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmscale-pod-discovery")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--output", required=True, type=Path, help="file_sd JSON file to keep current")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)

    from kubernetes import client, config, watch

    new_client: Any = config.new_client_from_config  # untyped in the kubernetes package
    api = new_client(config_file=str(args.kubeconfig))
    core = client.CoreV1Api(api)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    pods: dict[str, dict[str, Any]] = {}
    dirty = threading.Event()

    def watch_loop() -> None:
        while not stop.is_set():
            try:
                listing: Any = core.list_pod_for_all_namespaces()
                fresh = {p.metadata.uid: api.sanitize_for_serialization(p) for p in listing.items}
                pods.clear()
                pods.update(fresh)
                dirty.set()
                version = listing.metadata.resource_version
                while not stop.is_set():
                    watch_class: Any = watch.Watch  # untyped in the kubernetes package
                    for event in watch_class().stream(
                        core.list_pod_for_all_namespaces,
                        resource_version=version,
                        timeout_seconds=WATCH_TIMEOUT_SECONDS,
                    ):
                        pod = api.sanitize_for_serialization(event["object"])
                        version = pod["metadata"].get("resourceVersion", version)
                        uid = pod["metadata"].get("uid")
                        if event["type"] == "DELETED":
                            pods.pop(uid, None)
                        elif event["type"] in ("ADDED", "MODIFIED"):
                            pods[uid] = pod
                        dirty.set()
                        if stop.is_set():
                            break
            except Exception as exc:  # 410 Gone, apiserver restart: relist after a pause
                if not stop.is_set():
                    log.warning("pod watch interrupted (%s); relisting", exc)
                    stop.wait(1.0)

    threading.Thread(target=watch_loop, daemon=True).start()
    written = False
    while not stop.is_set():
        if dirty.wait(timeout=1.0):
            dirty.clear()
            write_atomically(args.output, render_targets(list(pods.values())))
            written = True
            time.sleep(WRITE_INTERVAL_SECONDS)
        elif not written:
            continue
    return 0


if __name__ == "__main__":
    sys.exit(main())

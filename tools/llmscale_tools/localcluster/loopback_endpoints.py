"""EndpointSlices for Services whose pods have loopback IPs (the local cluster's pods).

The apiserver rejects loopback addresses in IPv4 EndpointSlices and Endpoints ("may not be in
the loopback range"), so the controller-manager's endpointslice controller cannot publish the
local cluster's pods. This process does its job instead: for every Service with a selector it
keeps one slice `<service>-loopback` with addressType FQDN (which validation accepts for a
dotted-quad such as 127.64.0.3), the usual `kubernetes.io/service-name` label, the pods'
ready/serving/terminating conditions, targetRefs and the Service's ports, owned by the Service
so garbage collection removes it with the Service. Consumers that read `addresses[0]` of
slices labelled with the service name (the gateway) work unchanged.

Run as `python -m llmscale_tools.localcluster.loopback_endpoints --kubeconfig K`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

log = logging.getLogger("llmscale.loopback-endpoints")
MANAGED_BY = "localcluster.llmscale.dev"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_SUFFIX = "-loopback"
RESYNC_SECONDS = 10.0
MIN_RECONCILE_INTERVAL_SECONDS = 0.1


def _selected(pod: Mapping[str, Any], namespace: str, selector: Mapping[str, str]) -> bool:
    metadata = pod["metadata"]
    labels = metadata.get("labels") or {}
    return metadata.get("namespace") == namespace and all(labels.get(k) == v for k, v in selector.items())


def _target_port(service_port: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> int:
    target = service_port.get("targetPort", service_port["port"])
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for pod in pods:  # a named port: resolve it from the pods' container ports
        for container in (pod.get("spec") or {}).get("containers") or []:
            for port in container.get("ports") or []:
                if port.get("name") == target:
                    return int(port["containerPort"])
    return int(service_port["port"])


def _endpoint(pod: Mapping[str, Any]) -> dict[str, Any]:
    metadata = pod["metadata"]
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )
    terminating = metadata.get("deletionTimestamp") is not None
    endpoint: dict[str, Any] = {
        "addresses": [status["podIP"]],
        "conditions": {"ready": ready and not terminating, "serving": ready, "terminating": terminating},
        "targetRef": {
            "kind": "Pod",
            "namespace": metadata["namespace"],
            "name": metadata["name"],
            "uid": metadata.get("uid"),
        },
    }
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        endpoint["nodeName"] = node
    return endpoint


def desired_slices(
    services: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """(namespace, slice name) -> EndpointSlice body, for every Service with a selector."""
    all_pods = list(pods)
    result: dict[tuple[str, str], dict[str, Any]] = {}
    for service in services:
        metadata = service["metadata"]
        spec = service.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector or spec.get("type") == "ExternalName":
            continue
        namespace, name = metadata["namespace"], metadata["name"]
        members = [
            p
            for p in all_pods
            if _selected(p, namespace, selector)
            and (p.get("status") or {}).get("podIP")
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        members.sort(key=lambda p: str(p["metadata"]["name"]))
        ports = [
            {
                "name": port.get("name") or "",
                "port": _target_port(port, members),
                "protocol": port.get("protocol") or "TCP",
            }
            for port in spec.get("ports") or []
        ]
        slice_name = f"{name}{SLICE_SUFFIX}"
        result[(namespace, slice_name)] = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": slice_name,
                "namespace": namespace,
                "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY},
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": name,
                        "uid": metadata.get("uid"),
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": "FQDN",
            "endpoints": [_endpoint(p) for p in members],
            "ports": ports,
        }
    return result


def _comparable(body: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        body.get("endpoints") or [],
        body.get("ports") or [],
        (body.get("metadata") or {}).get("labels") or {},
    )


class Reconciler:
    def __init__(self, api: Any) -> None:
        from kubernetes import client

        self.api = api
        self.core: Any = client.CoreV1Api(api)
        self.discovery: Any = client.DiscoveryV1Api(api)

    def _dicts(self, listing: Any) -> list[dict[str, Any]]:
        return [self.api.sanitize_for_serialization(item) for item in listing.items]

    def reconcile(self, services: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        """Make our slices match `services` x `pods` (the watch caches)."""
        from kubernetes.client.exceptions import ApiException

        existing = {
            (s["metadata"]["namespace"], s["metadata"]["name"]): s
            for s in self._dicts(
                self.discovery.list_endpoint_slice_for_all_namespaces(
                    label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}"
                )
            )
        }
        desired = desired_slices(services, pods)
        for key, body in desired.items():
            namespace, name = key
            try:
                current = existing.get(key)
                if current is None:
                    self.discovery.create_namespaced_endpoint_slice(namespace, body)
                elif _comparable(self._normalise(current)) != _comparable(body):
                    body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                    self.discovery.replace_namespaced_endpoint_slice(name, namespace, body)
            except ApiException as exc:
                if exc.status not in (404, 409):  # raced with a deletion or another write: next pass
                    log.warning("EndpointSlice %s/%s: %s %s", namespace, name, exc.status, exc.reason)
        for key in existing.keys() - desired.keys():
            try:
                self.discovery.delete_namespaced_endpoint_slice(key[1], key[0])
            except ApiException as exc:
                if exc.status != 404:
                    log.warning("deleting EndpointSlice %s/%s: %s", key[0], key[1], exc.reason)

    @staticmethod
    def _normalise(current: Mapping[str, Any]) -> dict[str, Any]:
        """The server drops empty fields and defaults some: compare on what we set."""
        endpoints = []
        for e in current.get("endpoints") or []:
            endpoint = {
                "addresses": e.get("addresses"),
                "conditions": {
                    "ready": (e.get("conditions") or {}).get("ready"),
                    "serving": (e.get("conditions") or {}).get("serving"),
                    "terminating": (e.get("conditions") or {}).get("terminating"),
                },
                "targetRef": {
                    k: (e.get("targetRef") or {}).get(k) for k in ("kind", "namespace", "name", "uid")
                },
            }
            if e.get("nodeName"):
                endpoint["nodeName"] = e["nodeName"]
            endpoints.append(endpoint)
        ports = [
            {"name": p.get("name") or "", "port": p.get("port"), "protocol": p.get("protocol")}
            for p in current.get("ports") or []
        ]
        return {
            "endpoints": endpoints,
            "ports": ports,
            "metadata": {"labels": (current.get("metadata") or {}).get("labels") or {}},
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmscale-loopback-endpoints")
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)

    from kubernetes import client, config, watch

    new_client: Any = config.new_client_from_config  # untyped in the kubernetes package
    api = new_client(config_file=str(args.kubeconfig))
    core: Any = client.CoreV1Api(api)
    reconciler = Reconciler(api)
    stop = threading.Event()
    dirty = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()
        dirty.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    # uid -> object, per kind, kept current by list+watch: a reconcile reads these instead of
    # listing every pod again (that cost a CPU core during the demo's bursts)
    caches: dict[str, dict[str, dict[str, Any]]] = {"pods": {}, "services": {}}
    synced: set[str] = set()
    lock = threading.Lock()

    def watch_loop(kind: str, list_fn: Any) -> None:
        cache = caches[kind]
        while not stop.is_set():
            try:
                listing = list_fn()
                fresh = {o.metadata.uid: api.sanitize_for_serialization(o) for o in listing.items}
                with lock:
                    cache.clear()
                    cache.update(fresh)
                    synced.add(kind)
                dirty.set()
                version = listing.metadata.resource_version
                while not stop.is_set():
                    watch_class: Any = watch.Watch  # untyped in the kubernetes package
                    for event in watch_class().stream(list_fn, resource_version=version, timeout_seconds=30):
                        obj = api.sanitize_for_serialization(event["object"])
                        version = obj["metadata"].get("resourceVersion", version)
                        with lock:
                            if event["type"] == "DELETED":
                                cache.pop(obj["metadata"].get("uid"), None)
                            elif event["type"] in ("ADDED", "MODIFIED"):
                                cache[obj["metadata"].get("uid")] = obj
                        dirty.set()
                        if stop.is_set():
                            break
            except Exception as exc:  # 410 Gone, apiserver restart: relist after a pause
                if not stop.is_set():
                    log.warning("%s watch interrupted (%s); relisting", kind, exc)
                    stop.wait(1.0)

    for kind, list_fn in (
        ("pods", core.list_pod_for_all_namespaces),
        ("services", core.list_service_for_all_namespaces),
    ):
        threading.Thread(target=watch_loop, args=(kind, list_fn), daemon=True).start()
    while not stop.is_set():
        dirty.wait(timeout=RESYNC_SECONDS)
        if stop.is_set():
            break
        with lock:
            ready_to_reconcile = synced == {"pods", "services"}
            services = list(caches["services"].values())
            pods = list(caches["pods"].values())
        if not ready_to_reconcile:
            stop.wait(0.1)  # first lists still running
            continue
        dirty.clear()
        try:
            reconciler.reconcile(services, pods)
        except Exception as exc:  # the apiserver going away must not end the process
            log.warning("reconcile failed: %s", exc)
            stop.wait(1.0)
            dirty.set()
            continue
        if args.ready_file is not None and not args.ready_file.exists():
            args.ready_file.write_text("ready\n")
        time.sleep(MIN_RECONCILE_INTERVAL_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())

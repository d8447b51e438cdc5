"""The Kubernetes side of the gateway: watches that fill the routing table, and the activation PATCH.

The official (synchronous) kubernetes client runs in daemon threads, one list+watch loop per
resource and namespace. Each loop hands its results to the event loop with
`call_soon_threadsafe`, so the routing table is only ever touched on the loop. A watch that
expires (410 Gone) or breaks is re-listed with capped exponential backoff; while it is broken
the table keeps its last known state (routing to the last known replicas beats refusing).

Endpoints come from EndpointSlices (`discovery.k8s.io/v1`) labelled
`kubernetes.io/service-name=<service>`; the Service is named like its LLMDeployment. An endpoint
is routable when `conditions.ready` is not false and `conditions.terminating` is not true
(Kubernetes documents an unset `ready` as "treat as ready"); the port is the one named `http`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from llmscale.gateway.routing import DeploymentKey, DeploymentRoute, Endpoint, RoutingTable
from llmscale.gateway.sources import ACTIVATION_ANNOTATION
from llmscale.kubeconfig import load_kube_config as load_default_config
from llmscale.timestamps import rfc3339

log = logging.getLogger(__name__)

API_GROUP = "llmscale.dev"
API_VERSION = "v1alpha1"
PLURAL = "llmdeployments"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
ENDPOINT_PORT_NAME = "http"
WATCH_TIMEOUT_SECONDS = 60
MAX_BACKOFF_SECONDS = 30.0


def load_kube_config() -> client.ApiClient:
    """In-cluster config in a pod, else $KUBECONFIG / ~/.kube/config."""
    load_default_config()
    return client.ApiClient()


def route_from_object(obj: dict[str, Any]) -> DeploymentRoute | None:
    """LLMDeployment (as a dict) -> route; None when it has no model name yet."""
    metadata = obj.get("metadata") or {}
    model = (obj.get("spec") or {}).get("model") or {}
    name = model.get("name")
    if not isinstance(name, str) or not name:
        return None
    served = model.get("servedName")
    return DeploymentRoute(
        namespace=str(metadata.get("namespace", "")),
        name=str(metadata.get("name", "")),
        model_name=name,
        served_model_name=served if isinstance(served, str) and served else None,
    )


def endpoints_from_slice(endpoint_slice: Any) -> list[Endpoint]:
    """V1EndpointSlice -> endpoints on the port named `http` (the only port when none is named)."""
    ports = endpoint_slice.ports or []
    port = next((p.port for p in ports if p.name == ENDPOINT_PORT_NAME and p.port), None)
    if port is None and len(ports) == 1 and ports[0].port:
        port = ports[0].port
    if port is None:
        return []
    endpoints = []
    for item in endpoint_slice.endpoints or []:
        if not item.addresses:
            continue
        conditions = item.conditions
        ready = conditions is None or conditions.ready is not False
        terminating = conditions is not None and conditions.terminating is True
        pod = item.target_ref.name if item.target_ref is not None else None
        endpoints.append(
            Endpoint(item.addresses[0], int(port), ready=ready, terminating=terminating, pod=pod)
        )
    return endpoints


class _WatchLoop(threading.Thread):
    """list, then watch from the list's resourceVersion; relist on expiry or error."""

    def __init__(
        self,
        name: str,
        list_fn: Callable[..., Any],
        kwargs: dict[str, Any],
        on_list: Callable[[list[Any]], None],
        on_event: Callable[[str, Any], None],
        stop: threading.Event,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self._list_fn = list_fn
        self._kwargs = kwargs
        self._on_list = on_list
        self._on_event = on_event
        self._stop_event = stop
        self._watch: watch.Watch | None = None

    def halt(self) -> None:
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]

    def run(self) -> None:
        backoff = 1.0
        while not self._stop_event.is_set():
            try:
                listing = self._list_fn(**self._kwargs, _request_timeout=30)
                items, version = _items_and_version(listing)
                self._on_list(items)
                backoff = 1.0
                self._watch = watch.Watch()  # type: ignore[no-untyped-call]
                for event in self._watch.stream(  # type: ignore[no-untyped-call]
                    self._list_fn,
                    resource_version=version,
                    timeout_seconds=WATCH_TIMEOUT_SECONDS,
                    # client-side bound too: a silently dead connection must not hang the thread
                    _request_timeout=WATCH_TIMEOUT_SECONDS + 15,
                    **self._kwargs,
                ):
                    if self._stop_event.is_set():
                        return
                    if event["type"] == "ERROR":
                        break  # usually 410 Gone: relist
                    self._on_event(event["type"], event["object"])
            except ApiException as exc:
                if self._stop_event.is_set():
                    return
                if exc.status == 410:
                    continue
                log.warning(
                    "%s: API error %s %s; relisting in %.0fs", self.name, exc.status, exc.reason, backoff
                )
                self._stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
            except Exception as exc:  # network errors: keep the last state, retry
                if self._stop_event.is_set():
                    return  # stop() closed the stream under us
                log.warning("%s: %s; relisting in %.0fs", self.name, exc, backoff)
                self._stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)


def _items_and_version(listing: Any) -> tuple[list[Any], str | None]:
    if isinstance(listing, dict):  # custom objects come back as dicts
        return list(listing.get("items") or []), (listing.get("metadata") or {}).get("resourceVersion")
    return list(listing.items or []), listing.metadata.resource_version


class KubeEndpointSource:
    """`EndpointSource` over LLMDeployment and EndpointSlice watches (all namespaces or a list)."""

    def __init__(
        self, namespaces: Iterable[str] | None = None, api_client: client.ApiClient | None = None
    ) -> None:
        self.namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self._api_client = api_client
        self._stop = threading.Event()
        self._threads: list[_WatchLoop] = []
        self._pending_lists = 0
        self._lock = threading.Lock()
        # watch-thread state, guarded by _lock
        self._routes_by_scope: dict[str | None, set[DeploymentKey]] = {}
        self._slices: dict[tuple[str, str], tuple[DeploymentKey, list[Endpoint]]] = {}
        self._slice_keys_by_scope: dict[str | None, set[tuple[str, str]]] = {}

    async def start(self, table: RoutingTable) -> None:
        loop = asyncio.get_running_loop()
        api_client = self._api_client or await asyncio.to_thread(load_kube_config)
        custom = client.CustomObjectsApi(api_client)
        discovery = client.DiscoveryV1Api(api_client)

        def on_loop(fn: Callable[..., None], *args: Any) -> None:
            loop.call_soon_threadsafe(fn, *args)

        self._pending_lists = 2 * len(self.namespaces)
        listed_once: set[str] = set()

        def first_list_done(thread_name: str) -> None:
            with self._lock:
                if thread_name in listed_once:
                    return
                listed_once.add(thread_name)
                self._pending_lists -= 1
                done = self._pending_lists == 0
            if done:
                on_loop(table.mark_synced)

        for scope in self.namespaces:
            suffix = scope or "all-namespaces"
            if scope is None:
                dep_fn: Callable[..., Any] = custom.list_cluster_custom_object
                dep_kwargs: dict[str, Any] = {"group": API_GROUP, "version": API_VERSION, "plural": PLURAL}
                slice_fn: Callable[..., Any] = discovery.list_endpoint_slice_for_all_namespaces
                slice_kwargs: dict[str, Any] = {"label_selector": SERVICE_NAME_LABEL}
            else:
                dep_fn = custom.list_namespaced_custom_object
                dep_kwargs = {
                    "group": API_GROUP,
                    "version": API_VERSION,
                    "namespace": scope,
                    "plural": PLURAL,
                }
                slice_fn = discovery.list_namespaced_endpoint_slice
                slice_kwargs = {"namespace": scope, "label_selector": SERVICE_NAME_LABEL}
            self._threads += self._loops_for(scope, suffix, (dep_fn, dep_kwargs), (slice_fn, slice_kwargs),
                                             on_loop, table, first_list_done)  # fmt: skip
        for thread in self._threads:
            thread.start()

    def _loops_for(
        self,
        scope: str | None,
        suffix: str,
        deployments: tuple[Callable[..., Any], dict[str, Any]],
        slices: tuple[Callable[..., Any], dict[str, Any]],
        on_loop: Callable[..., None],
        table: RoutingTable,
        first_list_done: Callable[[str], None],
    ) -> list[_WatchLoop]:
        dep_name, slice_name = f"watch-llmdeployments-{suffix}", f"watch-endpointslices-{suffix}"

        def deployments_listed(items: list[Any]) -> None:
            self._deployments_listed(scope, items, on_loop, table)
            first_list_done(dep_name)

        def deployment_event(kind: str, obj: Any) -> None:
            self._deployment_event(kind, obj, on_loop, table)

        def slices_listed(items: list[Any]) -> None:
            self._slices_listed(scope, items, on_loop, table)
            first_list_done(slice_name)

        def slice_event(kind: str, obj: Any) -> None:
            self._slice_event(scope, kind, obj, on_loop, table)

        return [
            _WatchLoop(dep_name, *deployments, deployments_listed, deployment_event, self._stop),
            _WatchLoop(slice_name, *slices, slices_listed, slice_event, self._stop),
        ]

    async def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.halt()

    # ---- LLMDeployments (watch threads) -------------------------------------------------------
    def _deployments_listed(
        self, scope: str | None, items: list[Any], on_loop: Callable[..., None], table: RoutingTable
    ) -> None:
        routes = [r for r in (route_from_object(item) for item in items) if r is not None]
        with self._lock:
            previous = self._routes_by_scope.get(scope, set())
            self._routes_by_scope[scope] = {r.key for r in routes}
        for key in previous - {r.key for r in routes}:
            on_loop(table.remove_deployment, key)
        for route in routes:
            on_loop(table.upsert_deployment, route)

    def _deployment_event(
        self, kind: str, obj: Any, on_loop: Callable[..., None], table: RoutingTable
    ) -> None:
        metadata = obj.get("metadata") or {}
        key = (str(metadata.get("namespace", "")), str(metadata.get("name", "")))
        route = route_from_object(obj)
        if kind == "DELETED" or route is None:
            on_loop(table.remove_deployment, key)
        else:
            on_loop(table.upsert_deployment, route)

    # ---- EndpointSlices (watch threads) -------------------------------------------------------
    def _slices_listed(
        self, scope: str | None, items: list[Any], on_loop: Callable[..., None], table: RoutingTable
    ) -> None:
        touched: set[DeploymentKey] = set()
        with self._lock:
            for slice_id in self._slice_keys_by_scope.get(scope, set()):
                old = self._slices.pop(slice_id, None)
                if old is not None:
                    touched.add(old[0])
            fresh: set[tuple[str, str]] = set()
            for item in items:
                slice_id, entry = self._slice_entry(item)
                if entry is not None:
                    self._slices[slice_id] = entry
                    fresh.add(slice_id)
                    touched.add(entry[0])
            self._slice_keys_by_scope[scope] = fresh
        self._publish(touched, on_loop, table)

    def _slice_event(
        self, scope: str | None, kind: str, obj: Any, on_loop: Callable[..., None], table: RoutingTable
    ) -> None:
        slice_id, entry = self._slice_entry(obj)
        with self._lock:
            old = self._slices.pop(slice_id, None)
            touched = {old[0]} if old is not None else set()
            if kind != "DELETED" and entry is not None:
                self._slices[slice_id] = entry
                self._slice_keys_by_scope.setdefault(scope, set()).add(slice_id)
                touched.add(entry[0])
        self._publish(touched, on_loop, table)

    @staticmethod
    def _slice_entry(item: Any) -> tuple[tuple[str, str], tuple[DeploymentKey, list[Endpoint]] | None]:
        metadata = item.metadata
        slice_id = (metadata.namespace or "", metadata.name or "")
        service = (metadata.labels or {}).get(SERVICE_NAME_LABEL)
        if not service:
            return slice_id, None
        return slice_id, ((metadata.namespace or "", service), endpoints_from_slice(item))

    def _publish(self, keys: set[DeploymentKey], on_loop: Callable[..., None], table: RoutingTable) -> None:
        with self._lock:
            merged = {
                key: [
                    e
                    for deployment, endpoints in self._slices.values()
                    if deployment == key
                    for e in endpoints
                ]
                for key in keys
            }
        for key, endpoints in merged.items():
            on_loop(table.set_endpoints, key, endpoints)


class KubeActivationSignaller:
    """PATCHes `llmscale.dev/activation-requested-at` on the LLMDeployment (a JSON merge patch)."""

    def __init__(self, api_client: client.ApiClient | None = None, timeout_seconds: float = 5.0) -> None:
        self._api_client = api_client
        self.timeout_seconds = timeout_seconds

    def _api(self) -> client.CustomObjectsApi:
        if self._api_client is None:
            self._api_client = load_kube_config()
        return client.CustomObjectsApi(self._api_client)

    async def request_activation(self, namespace: str, name: str, requested_at: datetime) -> None:
        body = {"metadata": {"annotations": {ACTIVATION_ANNOTATION: rfc3339(requested_at)}}}

        def patch() -> None:
            self._api().patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type="application/merge-patch+json",
                _request_timeout=self.timeout_seconds,
            )

        await asyncio.to_thread(patch)

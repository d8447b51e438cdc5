"""The operator's only door to the API server: server-side apply, reads, deletes, status patches.

Wraps the synchronous `kubernetes` client; its errors become llmscale's own (causes chained):
404 -> None / False, 409 -> ConflictError, 400/403/422 -> ApiRejectedError, everything else
(5xx, 429, timeouts, connection) -> TransientError.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from llmscale.api import defaults
from llmscale.errors import LLMScaleError, TransientError

FIELD_MANAGER: Final = "llmscale"
REQUEST_TIMEOUT_SECONDS: Final = 30
API_DISCOVERY_TTL_SECONDS: Final = 300.0
# An absent API is asked about again sooner: installing a CRD (LeaderWorkerSet, PodMonitor)
# should be noticed within a retry or two, not five minutes.
API_DISCOVERY_ABSENT_TTL_SECONDS: Final = 30.0
CONNECTION_POOL_SIZE: Final = 32


class ConflictError(TransientError):
    """The object changed under us (409); read again and retry."""


class ApiRejectedError(LLMScaleError):
    """The API server refused the request as invalid or forbidden (retrying will not help)."""


@dataclass(frozen=True)
class Kind:
    prefix: str  # "/api/v1" or "/apis/<group>/<version>"
    plural: str


KINDS: Final[dict[tuple[str, str], Kind]] = {
    ("apps/v1", "Deployment"): Kind("/apis/apps/v1", "deployments"),
    ("v1", "Service"): Kind("/api/v1", "services"),
    ("v1", "Pod"): Kind("/api/v1", "pods"),
    ("v1", "ConfigMap"): Kind("/api/v1", "configmaps"),
    ("policy/v1", "PodDisruptionBudget"): Kind("/apis/policy/v1", "poddisruptionbudgets"),
    ("networking.k8s.io/v1", "NetworkPolicy"): Kind("/apis/networking.k8s.io/v1", "networkpolicies"),
    ("monitoring.coreos.com/v1", "PodMonitor"): Kind("/apis/monitoring.coreos.com/v1", "podmonitors"),
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): Kind(
        "/apis/leaderworkerset.x-k8s.io/v1", "leaderworkersets"
    ),
    (f"{defaults.API_GROUP}/{defaults.API_VERSION}", defaults.KIND): Kind(
        f"/apis/{defaults.API_GROUP}/{defaults.API_VERSION}", defaults.PLURAL
    ),
}
LLMDEPLOYMENT: Final = (f"{defaults.API_GROUP}/{defaults.API_VERSION}", defaults.KIND)


class ClusterApi(Protocol):
    """What reconcile needs from the cluster (tests pass an in-memory fake)."""

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]: ...
    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...
    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool: ...
    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]: ...
    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]: ...
    def has_api(self, group_version: str, plural: str) -> bool: ...


def _path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    try:
        known = KINDS[(api_version, kind)]
    except KeyError:
        raise ApiRejectedError(f"kind {kind} ({api_version}) is not one llmscale manages") from None
    path = f"{known.prefix}/namespaces/{namespace}/{known.plural}"
    return f"{path}/{name}" if name is not None else path


def _wrap(exc: Exception, what: str) -> LLMScaleError:
    if isinstance(exc, ApiException):
        detail = f"{what}: HTTP {exc.status} {exc.reason}: {_message(exc)}"
        if exc.status == 409:
            return ConflictError(detail)
        if exc.status in (400, 403, 422):
            return ApiRejectedError(detail)
        return TransientError(detail)
    return TransientError(f"{what}: {exc}")


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message", exc.body))
    except (ValueError, AttributeError):
        return str(exc.body)


class KubeApi:
    """ClusterApi over the `kubernetes` client (thread-safe; one instance per operator)."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api_client = api_client or client.ApiClient()
        self._discovery: dict[str, tuple[float, frozenset[str]]] = {}
        self._applied_versions: dict[tuple[str, str, str], str] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> KubeApi:
        """In-cluster service account if present, else $KUBECONFIG / ~/.kube/config."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        configuration = client.Configuration.get_default_copy()
        # kopf runs sync handlers on up to 16 threads; keep a connection for each.
        configuration.connection_pool_maxsize = CONNECTION_POOL_SIZE
        return cls(client.ApiClient(configuration))

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One request; returns the decoded JSON body or raises ApiException for non-2xx."""
        method_, url, headers, serialized, _ = self.api_client.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(
            method_, url, header_params=headers, body=serialized, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )
        response.read()  # type: ignore[no-untyped-call]
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return json.loads(response.data) if response.data else {}

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        path = _path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
        try:
            result = self._call(
                "PATCH",
                path,
                body=manifest,
                query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                content_type="application/apply-patch+yaml",
            )
        except (ApiException, HTTPError) as exc:
            raise _wrap(exc, f"apply {manifest['kind']} {meta['namespace']}/{meta['name']}") from exc
        with self._lock:
            self._applied_versions[(manifest["kind"], meta["namespace"], meta["name"])] = str(
                result.get("metadata", {}).get("resourceVersion")
            )
        return dict(result)

    def is_own_apply(self, kind: str, namespace: str, name: str, resource_version: str | None) -> bool:
        """Whether this object version is the echo of our own last apply (its watch event
        carries nothing new, so the parent need not be reconciled again)."""
        with self._lock:
            return resource_version is not None and self._applied_versions.get(
                (kind, namespace, name)
            ) == str(resource_version)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._call("GET", _path(api_version, kind, namespace, name)))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _wrap(exc, f"get {kind} {namespace}/{name}") from exc
        except HTTPError as exc:
            raise _wrap(exc, f"get {kind} {namespace}/{name}") from exc

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        try:
            self._call(
                "DELETE",
                _path(api_version, kind, namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise _wrap(exc, f"delete {kind} {namespace}/{name}") from exc
        except HTTPError as exc:
            raise _wrap(exc, f"delete {kind} {namespace}/{name}") from exc
        return True

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        try:
            result = self._call(
                "GET", _path(api_version, kind, namespace), query=[("labelSelector", label_selector)]
            )
        except (ApiException, HTTPError) as exc:
            raise _wrap(exc, f"list {kind} in {namespace}") from exc
        return list(result.get("items") or [])

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        """Merge-patch the status subresource; with `resource_version`, 409 if it moved on."""
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        path = _path(*LLMDEPLOYMENT, namespace, name) + "/status"
        try:
            result = self._call(
                "PATCH",
                path,
                body=body,
                query=[("fieldManager", FIELD_MANAGER)],
                content_type="application/merge-patch+json",
            )
        except (ApiException, HTTPError) as exc:
            raise _wrap(exc, f"patch status of {defaults.KIND} {namespace}/{name}") from exc
        return dict(result)

    def has_api(self, group_version: str, plural: str) -> bool:
        """Whether the API server serves `plural` in `group_version` (cached for 5 minutes)."""
        now = time.monotonic()
        with self._lock:
            cached = self._discovery.get(group_version)
        if (
            cached is None
            or now - cached[0] > API_DISCOVERY_TTL_SECONDS
            or (plural not in cached[1] and now - cached[0] > API_DISCOVERY_ABSENT_TTL_SECONDS)
        ):
            prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
            try:
                served = frozenset(r["name"] for r in self._call("GET", prefix).get("resources", []))
            except ApiException as exc:
                if exc.status != 404:
                    raise _wrap(exc, f"discover {group_version}") from exc
                served = frozenset()
            except HTTPError as exc:
                raise _wrap(exc, f"discover {group_version}") from exc
            cached = (now, served)
            with self._lock:
                self._discovery[group_version] = cached
        return plural in cached[1]

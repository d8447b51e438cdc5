"""An in-memory ClusterApi for reconcile tests (no network, no kopf)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from llmscale.controller.kube import ApiRejectedError, ConflictError

LLMDEP = ("llmscale.dev/v1alpha1", "LLMDeployment")


class FakeCluster:
    """Stores objects by (apiVersion, kind, namespace, name); apply merges like a forced SSA."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.served_apis: set[tuple[str, str]] = set()
        self.reject_kinds: set[str] = set()
        self.conflicts_left = 0
        self._version = 0

    def _bump(self, obj: dict[str, Any]) -> None:
        self._version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        stored = copy.deepcopy(obj)
        self._bump(stored)
        self.objects[(obj["apiVersion"], obj["kind"], meta.get("namespace", "default"), meta["name"])] = (
            stored
        )
        return stored

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("apply", manifest["kind"]))
        if manifest["kind"] in self.reject_kinds:
            raise ApiRejectedError(f"apply {manifest['kind']}: HTTP 422: spec.template is invalid")
        key = (
            manifest["apiVersion"],
            manifest["kind"],
            manifest["metadata"]["namespace"],
            manifest["metadata"]["name"],
        )
        old = self.objects.get(key, {})
        stored = copy.deepcopy(manifest)
        if "status" in old:
            stored["status"] = old["status"]
        if manifest["kind"] == "Deployment" and "replicas" not in manifest["spec"] and old:
            stored["spec"]["replicas"] = old["spec"].get("replicas", 1)
        self._bump(stored)
        self.objects[key] = stored
        return copy.deepcopy(stored)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", kind))
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.calls.append(("delete", kind))
        return self.objects.pop((api_version, kind, namespace, name), None) is not None

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self.calls.append(("list", kind))
        wanted = dict(part.split("=", 1) for part in label_selector.split(","))
        return [
            copy.deepcopy(o)
            for (v, k, ns, _), o in self.objects.items()
            if (v, k, ns) == (api_version, kind, namespace)
            and all(o["metadata"].get("labels", {}).get(a) == b for a, b in wanted.items())
        ]

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str | None
    ) -> dict[str, Any]:
        self.calls.append(("patch_status", "LLMDeployment"))
        obj = self.objects[(*LLMDEP, namespace, name)]
        if self.conflicts_left > 0:
            self.conflicts_left -= 1
            self._bump(obj)
            raise ConflictError("the object has been modified")
        if resource_version is not None and obj["metadata"]["resourceVersion"] != resource_version:
            raise ConflictError("the object has been modified")
        current = obj.setdefault("status", {})
        for key, value in status.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = copy.deepcopy(value)
        self._bump(obj)
        return copy.deepcopy(obj)

    def has_api(self, group_version: str, plural: str) -> bool:
        return (group_version, plural) in self.served_apis

    # helpers for tests
    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[("apps/v1", "Deployment", namespace, name)]

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        return self.objects[(*LLMDEP, namespace, name)].get("status", {})

    def set_deployment_status(self, namespace: str, name: str, **status: Any) -> None:
        deployment = self.deployment(namespace, name)
        deployment["status"] = {"observedGeneration": deployment["metadata"].get("generation"), **status}


class RecordedEvents:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def emit(self, type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def events() -> RecordedEvents:
    return RecordedEvents()

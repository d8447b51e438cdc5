from __future__ import annotations

from typing import Any

from llmscale_tools.localcluster.loopback_endpoints import desired_slices


def _pod(
    name: str, ip: str | None, *, ready: bool = True, app: str = "chat", deleting: bool = False
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": {"app": app}}
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": "Running", "conditions": [{"type": "Ready", "status": str(ready)}]}
    if ip:
        status["podIP"] = ip
    return {
        "metadata": metadata,
        "spec": {
            "nodeName": "gpu-l4-0",
            "containers": [{"ports": [{"name": "http", "containerPort": 8000}]}],
        },
        "status": status,
    }


SERVICE = {
    "metadata": {"name": "chat", "namespace": "ns", "uid": "svc-uid"},
    "spec": {"selector": {"app": "chat"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
}


def test_one_fqdn_slice_per_service_with_conditions_and_resolved_port() -> None:
    pods = [
        _pod("b", "127.64.0.2", ready=False),
        _pod("a", "127.64.0.1"),
        _pod("c", "127.64.0.3", deleting=True),
        _pod("no-ip", None),
        _pod("other", "127.64.0.9", app="other"),
    ]
    slices = desired_slices([SERVICE], pods)
    body = slices[("ns", "chat-loopback")]
    assert body["addressType"] == "FQDN"
    assert body["metadata"]["labels"]["kubernetes.io/service-name"] == "chat"
    assert body["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"
    assert body["ports"] == [{"name": "http", "port": 8000, "protocol": "TCP"}]
    by_address = {e["addresses"][0]: e["conditions"] for e in body["endpoints"]}
    assert by_address == {
        "127.64.0.1": {"ready": True, "serving": True, "terminating": False},
        "127.64.0.2": {"ready": False, "serving": False, "terminating": False},
        "127.64.0.3": {"ready": False, "serving": True, "terminating": True},
    }


def test_services_without_selector_get_no_slice() -> None:
    headless = {"metadata": {"name": "x", "namespace": "ns"}, "spec": {"ports": [{"port": 1}]}}
    assert desired_slices([headless], [_pod("a", "127.64.0.1")]) == {}

"""Scale-to-zero on the local cluster: held requests wake the deployment and succeed.

Real control plane + Prometheus + pod runner/emulator; the operator and the gateway run as
subprocesses scoped to the test's namespace (llmscale_tools.demo.stack.Stack). Short windows come
from the per-deployment `llmscale.dev/scaling-overrides` annotation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import pytest

from llmscale_tools.demo.stack import Stack, emulated_llmdeployment

pytestmark = pytest.mark.timeout(240)

FAST = {
    "idle_window_seconds": 8.0,
    "scale_down_delay_seconds": 8.0,
    "stable_window_seconds": 8.0,
    "cold_start_seconds": 5.0,
}


@pytest.fixture
def stack(cluster: Any, namespace: str) -> Iterator[Stack]:
    if cluster.local is None:
        pytest.skip("needs the local cluster's pod runner (emulated vLLM pods)")
    local = cluster.local
    stack = Stack.on_local_cluster(local, namespace)
    try:
        stack.start_operator(interval_seconds=1.0)
        stack.start_gateway(hold_timeout_seconds=90.0, queue_size=3)
        yield stack
    finally:
        stack.stop_all()


def _replicas(apps_v1: Any, namespace: str, name: str) -> int | None:
    try:
        deployment = apps_v1.read_namespaced_deployment(name, namespace)
    except Exception:
        return None
    return int(deployment.spec.replicas or 0)


async def _complete(url: str, model: str, stream: bool) -> tuple[int, dict[str, str], list[str], float]:
    """(status, headers, SSE lines incl. keep-alive comments, seconds) of one completion."""
    body = {
        "model": model,
        "prompt": "hello world",
        "max_tokens": 8,
        "stream": stream,
        "llmscale_prompt_tokens": 64,
    }
    started = time.monotonic()
    lines: list[str] = []
    timeout = aiohttp.ClientTimeout(total=120)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(f"{url}/v1/completions", json=body) as response,
    ):
        if stream and response.status == 200:
            async for raw in response.content:
                line = raw.decode().strip()
                if line:
                    lines.append(line)
        else:
            lines.append(await response.text())
        return response.status, dict(response.headers), lines, time.monotonic() - started


def test_request_at_zero_is_held_wakes_and_succeeds_then_idle_goes_to_zero(
    stack: Stack, namespace: str, custom_objects: Any, apps_v1: Any, wait_for: Callable[..., Any]
) -> None:
    name = "zero"
    custom_objects.create_namespaced_custom_object(
        "llmscale.dev", "v1alpha1", namespace, "llmdeployments",
        emulated_llmdeployment(name, namespace, strategy="ScaleToZero", scaling_overrides=FAST),
    )  # fmt: skip
    wait_for(lambda: _replicas(apps_v1, namespace, name) == 0, 60, "the Deployment created at zero replicas")
    wait_for(
        lambda: _status(custom_objects, namespace, name).get("desiredReplicas") == 0, 30, "desiredReplicas 0"
    )

    async def scenario() -> list[tuple[int, dict[str, str], list[str], float]]:
        streaming = asyncio.create_task(_complete(stack.gateway_url, name, stream=True))
        plain = [asyncio.create_task(_complete(stack.gateway_url, name, stream=False)) for _ in range(2)]
        await asyncio.sleep(1.0)  # three held now: the queue (size 3) is full
        overflow = await _complete(stack.gateway_url, name, stream=False)
        return [overflow, await streaming, *[await p for p in plain]]

    overflow, streaming, *plain = asyncio.run(scenario())
    assert overflow[0] == 503 and "Retry-After" in overflow[1], overflow
    assert streaming[0] == 200, streaming
    assert any(line.startswith(":") for line in streaming[2]), "no SSE keep-alive comment while held"
    assert any(line.startswith("data:") and "[DONE]" not in line for line in streaming[2])
    assert all(p[0] == 200 for p in plain), plain
    status = _status(custom_objects, namespace, name)
    reasons = [d.get("reason") for d in status.get("lastDecisions") or ()]
    assert {"ActivationRequested", "GatewayQueue"} & set(reasons), reasons
    # idle: positive proof (engine and gateway both at zero) for 8 s -> back to zero
    wait_for(lambda: _replicas(apps_v1, namespace, name) == 0, 90, "scale to zero after the idle window")
    status = _status(custom_objects, namespace, name)
    assert status["coldStart"]["samples"] >= 1
    assert status["cost"]["gpuHours"] > 0
    conditions = {c["type"]: c for c in status.get("conditions") or ()}
    assert conditions["MetricsAvailable"]["status"] == "True", conditions


def _status(custom_objects: Any, namespace: str, name: str) -> dict[str, Any]:
    body = custom_objects.get_namespaced_custom_object(
        "llmscale.dev", "v1alpha1", namespace, "llmdeployments", name
    )
    return dict(body.get("status") or {})


def test_events_recorded_for_scaling(stack: Stack, namespace: str, core_v1: Any, custom_objects: Any,
                                     apps_v1: Any, wait_for: Callable[..., Any]) -> None:  # fmt: skip
    name = "events"
    custom_objects.create_namespaced_custom_object(
        "llmscale.dev", "v1alpha1", namespace, "llmdeployments",
        emulated_llmdeployment(name, namespace, strategy="ScaleToZero", scaling_overrides=FAST),
    )  # fmt: skip
    wait_for(lambda: _replicas(apps_v1, namespace, name) == 0, 60, "the Deployment at zero")
    status, _headers, _lines, _seconds = asyncio.run(_complete(stack.gateway_url, name, stream=False))
    assert status == 200

    def scale_events() -> list[Any]:
        events = core_v1.list_namespaced_event(namespace).items
        return [
            e
            for e in events
            if e.involved_object.kind == "LLMDeployment"
            and e.involved_object.name == name
            and (e.message or "").startswith("Scaled up")
        ]

    def all_events() -> list[str]:
        return [f"{e.reason}: {e.message}" for e in core_v1.list_namespaced_event(namespace).items]

    # The wake is the event "from 0": a list of Events is not in time order, and a later
    # 1 -> N scale-up (the gateway's burst read) may be there too.
    found = wait_for(
        lambda: [e for e in scale_events() if e.message.startswith("Scaled up from 0 to ")],
        30,
        "a 'Scaled up from 0' Event on the LLMDeployment",
        on_timeout=all_events,
    )
    assert found[0].reason in ("ActivationRequested", "GatewayQueue", "DemandAtZero"), all_events()

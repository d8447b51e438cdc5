"""Turning LLMDeployments and EndpointSlices (client model objects) into routes and endpoints."""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes import client

from llmscale.gateway.kube import KubeEndpointSource, endpoints_from_slice, route_from_object
from llmscale.gateway.routing import RoutingTable


def llmdeployment(name: str, model: str | None, served: str | None = None) -> dict[str, Any]:
    spec_model: dict[str, Any] = {}
    if model is not None:
        spec_model["name"] = model
    if served is not None:
        spec_model["servedName"] = served
    return {"metadata": {"namespace": "ns", "name": name}, "spec": {"model": spec_model}}


def endpoint_slice(
    service: str, endpoints: list[tuple[str, bool | None, bool | None]], port_name: str = "http"
) -> client.V1EndpointSlice:
    return client.V1EndpointSlice(
        address_type="IPv4",
        metadata=client.V1ObjectMeta(
            namespace="ns", name=f"{service}-abcde", labels={"kubernetes.io/service-name": service}
        ),
        ports=[client.DiscoveryV1EndpointPort(name=port_name, port=8000, protocol="TCP")],
        endpoints=[
            client.V1Endpoint(
                addresses=[address],
                conditions=client.V1EndpointConditions(ready=ready, serving=ready, terminating=terminating),
                target_ref=client.V1ObjectReference(kind="Pod", name=f"pod-{address}"),
            )
            for address, ready, terminating in endpoints
        ],
    )


def test_route_from_llmdeployment() -> None:
    route = route_from_object(llmdeployment("llama", "meta-llama/Llama-3.1-8B", "llama"))
    assert route is not None
    assert route.key == ("ns", "llama")
    assert route.engine_model_name == "llama"
    assert route_from_object(llmdeployment("x", None)) is None
    unnamed = route_from_object(llmdeployment("q", "Qwen/Qwen2.5-7B"))
    assert unnamed is not None and unnamed.engine_model_name == "Qwen/Qwen2.5-7B"


def test_endpoints_from_slice_keep_conditions_and_the_http_port() -> None:
    eps = endpoints_from_slice(
        endpoint_slice(
            "llama", [("10.0.0.1", True, False), ("10.0.0.2", False, True), ("10.0.0.3", None, None)]
        )
    )
    assert [(e.address, e.port, e.routable) for e in eps] == [
        ("10.0.0.1", 8000, True),
        ("10.0.0.2", 8000, False),  # terminating: in-flight requests finish, no new ones
        ("10.0.0.3", 8000, True),  # unset ready means "treat as ready"
    ]
    assert eps[0].pod == "pod-10.0.0.1"
    # a single unnamed port is used; several ports without `http` give nothing
    assert (
        endpoints_from_slice(endpoint_slice("x", [("10.0.0.9", True, False)], port_name=""))[0].port == 8000
    )


def test_slice_events_are_merged_per_service_on_the_loop() -> None:
    async def main() -> None:
        table = RoutingTable()
        source = KubeEndpointSource(["ns"])
        loop = asyncio.get_running_loop()

        def on_loop(fn: Any, *args: Any) -> None:
            loop.call_soon_threadsafe(fn, *args)

        source._deployments_listed("ns", [llmdeployment("llama", "m")], on_loop, table)
        first = endpoint_slice("llama", [("10.0.0.1", True, False)])
        second = endpoint_slice("llama", [("10.0.0.2", True, False)])
        second.metadata.name = "llama-fghij"
        source._slices_listed("ns", [first], on_loop, table)
        source._slice_event("ns", "ADDED", second, on_loop, table)
        await asyncio.sleep(0)
        assert {e.address for e in table.routable_endpoints(("ns", "llama"))} == {"10.0.0.1", "10.0.0.2"}
        source._slice_event("ns", "DELETED", first, on_loop, table)
        source._deployment_event("DELETED", llmdeployment("llama", "m"), on_loop, table)
        await asyncio.sleep(0)
        assert [e.address for e in table.routable_endpoints(("ns", "llama"))] == ["10.0.0.2"]
        assert table.lookup("m") is None

    asyncio.run(main())

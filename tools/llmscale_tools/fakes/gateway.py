"""Fakes of the gateway's control-plane contacts, for tests and benchmarks."""

from __future__ import annotations

import asyncio
from datetime import datetime

from llmscale.gateway.routing import DeploymentKey, DeploymentRoute, Endpoint, RoutingTable


class FakeEndpointSource:
    """An `EndpointSource` driven by setters (applied to the table immediately, on the loop)."""

    def __init__(self, synced: bool = True) -> None:
        self.table: RoutingTable | None = None
        self._routes: dict[DeploymentKey, DeploymentRoute] = {}
        self._endpoints: dict[DeploymentKey, list[Endpoint]] = {}
        self._synced = synced
        self.stopped = False

    async def start(self, table: RoutingTable) -> None:
        self.table = table
        table.replace_deployments(self._routes.values())
        for key, endpoints in self._endpoints.items():
            table.set_endpoints(key, endpoints)
        if self._synced:
            table.mark_synced()

    async def stop(self) -> None:
        self.stopped = True

    def add_deployment(
        self, namespace: str, name: str, model_name: str, served_model_name: str | None = None
    ) -> DeploymentRoute:
        route = DeploymentRoute(namespace, name, model_name, served_model_name)
        self._routes[route.key] = route
        if self.table is not None:
            self.table.upsert_deployment(route)
        return route

    def remove_deployment(self, namespace: str, name: str) -> None:
        self._routes.pop((namespace, name), None)
        if self.table is not None:
            self.table.remove_deployment((namespace, name))

    def set_endpoints(self, namespace: str, name: str, endpoints: list[Endpoint]) -> None:
        self._endpoints[(namespace, name)] = list(endpoints)
        if self.table is not None:
            self.table.set_endpoints((namespace, name), endpoints)

    def mark_synced(self) -> None:
        self._synced = True
        if self.table is not None:
            self.table.mark_synced()


class FakeActivationSignaller:
    """Records activation requests with their loop time; can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, datetime, float]] = []
        self.fail_next = 0
        self.called = asyncio.Event()

    async def request_activation(self, namespace: str, name: str, requested_at: datetime) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectionError("fake API server refused the PATCH")
        self.calls.append((namespace, name, requested_at, asyncio.get_running_loop().time()))
        self.called.set()

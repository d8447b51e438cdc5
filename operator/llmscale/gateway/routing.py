"""The gateway's routing table: which model is which LLMDeployment, and where its ready replicas are.

The table lives on the event loop and is only mutated there (the Kubernetes watch threads hand
their updates over with `loop.call_soon_threadsafe`). Waiters (held requests) wait on a
per-deployment change event, so a replica turning Ready wakes exactly the requests that need it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

DeploymentKey = tuple[str, str]


@dataclass(frozen=True)
class Endpoint:
    """One replica address from an EndpointSlice (port named `http`)."""

    address: str
    port: int
    ready: bool = True
    terminating: bool = False
    pod: str | None = None

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    @property
    def routable(self) -> bool:
        """New requests go only to ready replicas that are not shutting down (graceful scale-down)."""
        return self.ready and not self.terminating


@dataclass(frozen=True)
class DeploymentRoute:
    """What the gateway needs from an LLMDeployment: its key and the model names it answers to."""

    namespace: str
    name: str
    model_name: str
    served_model_name: str | None = None

    @property
    def key(self) -> DeploymentKey:
        return (self.namespace, self.name)

    @property
    def engine_model_name(self) -> str:
        """The name vLLM serves (`--served-model-name`, else the model id)."""
        return self.served_model_name or self.model_name


@dataclass(frozen=True)
class RouteMatch:
    route: DeploymentRoute
    # the `model` value to send upstream when the client used the other name, else None
    rewrite_model_to: str | None


class RoutingTable:
    """Deployments by model name, routable endpoints by deployment, in-flight counts by endpoint."""

    def __init__(self, on_deployment_added: Callable[[DeploymentRoute], None] | None = None) -> None:
        self._routes: dict[DeploymentKey, DeploymentRoute] = {}
        self._endpoints: dict[DeploymentKey, tuple[Endpoint, ...]] = {}
        self._in_flight: dict[str, int] = {}
        self._changed: dict[DeploymentKey, asyncio.Event] = {}
        self._synced = asyncio.Event()
        self._round_robin = 0
        self._on_deployment_added = on_deployment_added

    # ---- updates (from the endpoint source) -------------------------------------------------
    def mark_synced(self) -> None:
        """The source has listed everything once: an unknown model is now really unknown."""
        self._synced.set()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout_seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._synced.wait(), timeout_seconds)
        except TimeoutError:
            return False
        return True

    def upsert_deployment(self, route: DeploymentRoute) -> None:
        previous = self._routes.get(route.key)
        self._routes[route.key] = route
        if previous is None and self._on_deployment_added is not None:
            self._on_deployment_added(route)
        if previous != route:
            self._notify(route.key)

    def remove_deployment(self, key: DeploymentKey) -> None:
        if self._routes.pop(key, None) is not None:
            self._notify(key)

    def replace_deployments(self, routes: Iterable[DeploymentRoute]) -> None:
        fresh = {route.key: route for route in routes}
        for key in set(self._routes) - set(fresh):
            self.remove_deployment(key)
        for route in fresh.values():
            self.upsert_deployment(route)

    def set_endpoints(self, key: DeploymentKey, endpoints: Iterable[Endpoint]) -> None:
        snapshot = tuple(sorted(set(endpoints), key=lambda e: (e.address, e.port)))
        if self._endpoints.get(key, ()) != snapshot:
            self._endpoints[key] = snapshot
            self._notify(key)

    def _notify(self, key: DeploymentKey) -> None:
        event = self._changed.pop(key, None)
        if event is not None:
            event.set()

    # ---- queries ------------------------------------------------------------------------------
    def lookup(self, model: str) -> RouteMatch | None:
        """The deployment serving `model`: its served name first, then its model id.

        Two deployments claiming one name (possible across namespaces): the first by
        (namespace, name) wins, deterministically; run one gateway per namespace to avoid it.
        """
        routes = sorted(self._routes.values(), key=lambda r: r.key)
        for route in routes:
            if route.engine_model_name == model:
                return RouteMatch(route, None)
        for route in routes:
            if route.model_name == model:
                return RouteMatch(
                    route, route.engine_model_name if route.engine_model_name != model else None
                )
        return None

    def route(self, key: DeploymentKey) -> DeploymentRoute | None:
        return self._routes.get(key)

    def routes(self) -> list[DeploymentRoute]:
        return sorted(self._routes.values(), key=lambda r: r.key)

    def routable_endpoints(self, key: DeploymentKey) -> list[Endpoint]:
        return [e for e in self._endpoints.get(key, ()) if e.routable]

    def in_flight(self, endpoint: Endpoint) -> int:
        return self._in_flight.get(endpoint.url, 0)

    async def wait_changed(self, key: DeploymentKey, timeout_seconds: float) -> bool:
        """Wait until the deployment's route or endpoints change; False on timeout."""
        event = self._changed.setdefault(key, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), max(0.0, timeout_seconds))
        except TimeoutError:
            return False
        return True

    # ---- least outstanding requests -----------------------------------------------------------
    def acquire(self, key: DeploymentKey, exclude: frozenset[str] = frozenset()) -> Endpoint | None:
        """Pick the routable endpoint with the fewest in-flight requests and count one more on it.

        Ties rotate (round robin) so that an idle fleet still spreads load. The caller must
        `release` the endpoint when the request ends, however it ends.
        """
        candidates = [e for e in self.routable_endpoints(key) if e.url not in exclude]
        if not candidates:
            return None
        self._round_robin += 1
        offset = self._round_robin % len(candidates)
        rotated = candidates[offset:] + candidates[:offset]
        chosen = min(rotated, key=self.in_flight)
        self._in_flight[chosen.url] = self.in_flight(chosen) + 1
        return chosen

    def release(self, endpoint: Endpoint) -> None:
        remaining = self.in_flight(endpoint) - 1
        if remaining > 0:
            self._in_flight[endpoint.url] = remaining
        else:
            self._in_flight.pop(endpoint.url, None)

"""The gateway's two contacts with the control plane, behind small interfaces.

- `EndpointSource` fills the routing table (LLMDeployments and their EndpointSlices).
- `ActivationSignaller` tells the operator that a deployment at zero has demand (the
  `llmscale.dev/activation-requested-at` annotation, see docs/gateway.md).

The Kubernetes implementations live in `llmscale.gateway.kube`; tests use `llmscale_tools.fakes.gateway`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from llmscale.gateway.routing import RoutingTable

ACTIVATION_ANNOTATION = "llmscale.dev/activation-requested-at"


class EndpointSource(Protocol):
    async def start(self, table: RoutingTable) -> None:
        """Begin filling `table`; call `table.mark_synced()` once everything was listed."""
        ...

    async def stop(self) -> None: ...


class ActivationSignaller(Protocol):
    async def request_activation(self, namespace: str, name: str, requested_at: datetime) -> None:
        """Record demand for a deployment that has no ready endpoint. May raise; the caller retries."""
        ...

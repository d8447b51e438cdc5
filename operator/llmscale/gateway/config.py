"""Gateway settings (the `llmscale gateway` flags), validated once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final, Literal

from llmscale.errors import UserInputError

AuthMode = Literal["api-key", "none"]
API_KEY_LABEL: Final = "llmscale.dev/gateway-api-key"


def _default_key_namespace() -> str:
    return os.environ.get("POD_NAMESPACE", "llmscale-system")


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # watch only these namespaces; empty = all namespaces
    namespaces: tuple[str, ...] = ()
    # requests held per deployment while it has no ready replica; one more gets 503
    queue_size: int = 100
    # how long a request may be held waiting for a replica (a cold start: minutes for big models)
    hold_timeout_seconds: float = 300.0
    # upper bound of one forwarded request, from forwarding to the last byte
    request_timeout_seconds: float = 600.0
    # SSE comment interval for held streaming clients (keeps proxies and clients from timing out)
    keepalive_interval_seconds: float = 5.0
    # Retry-After on a 503 (overflow or hold timeout)
    retry_after_seconds: int = 5
    # while requests stay held, re-send the activation signal this often (first one is immediate)
    activation_refresh_seconds: float = 5.0
    # connecting to a replica; a refused or slow connect moves the request to another replica
    connect_timeout_seconds: float = 5.0
    # "api-key": every inference and /v1/models request needs a valid bearer key; "none" only
    # when chosen explicitly (chart value gateway.auth.enabled=false)
    auth: AuthMode = "api-key"
    # key Secrets: in this namespace, with this label selector (one Secret per key)
    api_key_namespace: str = ""
    api_key_selector: str = f"{API_KEY_LABEL}=true"
    # default per-key rate limit (a Secret's requestsPerMinute overrides it); never 0 (no "off")
    rate_limit_per_minute: int = 600
    # how often the key Secrets are re-read (rotation and revocation take effect within this)
    api_key_refresh_seconds: float = 30.0

    def __post_init__(self) -> None:
        positive = {
            "--queue-size": self.queue_size,
            "--hold-timeout": self.hold_timeout_seconds,
            "--request-timeout": self.request_timeout_seconds,
            "--keepalive-interval": self.keepalive_interval_seconds,
            "--retry-after": self.retry_after_seconds,
            "--activation-refresh": self.activation_refresh_seconds,
            "--connect-timeout": self.connect_timeout_seconds,
            "--api-key-refresh": self.api_key_refresh_seconds,
        }
        for flag, value in positive.items():
            if not value > 0:
                raise UserInputError(f"{flag}: value {value!r} must be > 0")
        if self.auth not in ("api-key", "none"):
            raise UserInputError(f"--auth: value {self.auth!r} must be api-key or none")
        if not isinstance(self.rate_limit_per_minute, int) or self.rate_limit_per_minute < 1:
            raise UserInputError(
                f"--rate-limit: value {self.rate_limit_per_minute!r} must be a whole number of requests"
                " per minute >= 1 (the limit cannot be switched off)"
            )
        if self.auth == "api-key" and not self.api_key_selector.strip():
            raise UserInputError("--api-key-selector: value '' must name the key Secrets' label")
        if not self.api_key_namespace:
            object.__setattr__(self, "api_key_namespace", _default_key_namespace())
        if not 0 <= self.port <= 65535:
            raise UserInputError(f"--port: value {self.port!r} is not a TCP port (0-65535)")

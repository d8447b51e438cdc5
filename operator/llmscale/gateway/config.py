"""Gateway settings (the `llmscale gateway` flags), validated once."""

from __future__ import annotations

from dataclasses import dataclass

from llmscale.errors import UserInputError


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

    def __post_init__(self) -> None:
        positive = {
            "--queue-size": self.queue_size,
            "--hold-timeout": self.hold_timeout_seconds,
            "--request-timeout": self.request_timeout_seconds,
            "--keepalive-interval": self.keepalive_interval_seconds,
            "--retry-after": self.retry_after_seconds,
            "--activation-refresh": self.activation_refresh_seconds,
            "--connect-timeout": self.connect_timeout_seconds,
        }
        for flag, value in positive.items():
            if not value > 0:
                raise UserInputError(f"{flag}: value {value!r} must be > 0")
        if not 0 <= self.port <= 65535:
            raise UserInputError(f"--port: value {self.port!r} is not a TCP port (0-65535)")

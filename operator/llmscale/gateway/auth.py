"""API keys: who may call which models through the gateway, and how often (pure, no I/O).

A key is a bearer token kept in a Kubernetes Secret (one Secret per key, docs/gateway.md):

    data.token              the bearer token, 32-512 printable ASCII characters (required)
    data.models             comma-separated model names the key may call ('*': every model)
    data.namespaces         comma-separated namespaces whose deployments it may call ('*': all)
    data.requestsPerMinute  its rate limit (optional; default: the gateway's --rate-limit)

At least one of models and namespaces must be set: a key that grants everything says so with
'*'. When both are set a deployment must match both. Only a SHA-256 digest of each token is kept;
presented tokens are hashed and compared with hmac.compare_digest against every key (no early
exit), so the time taken says nothing about which bytes matched. Tokens are never logged: keys
are named by their Secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import re
from dataclasses import dataclass, field
from typing import Any, Final

from llmscale.errors import UserInputError
from llmscale.gateway.routing import DeploymentRoute

TOKEN_MIN_CHARS: Final = 32
TOKEN_MAX_CHARS: Final = 512
_TOKEN_CHARS: Final = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
ALL: Final = "*"
# burst = this many seconds' worth of the per-minute rate (at least one request)
BURST_SECONDS: Final = 10


class KeySecretError(UserInputError):
    """A key Secret that cannot be used; the message names the Secret and the field."""


@dataclass(frozen=True)
class ApiKey:
    name: str  # "namespace/secret": how logs and metrics refer to the key
    digest: bytes = field(repr=False)
    models: frozenset[str]
    namespaces: frozenset[str]
    requests_per_minute: int

    def permits(self, route: DeploymentRoute) -> bool:
        models_ok = (
            not self.models
            or ALL in self.models
            or bool({route.engine_model_name, route.model_name} & self.models)
        )
        namespaces_ok = not self.namespaces or ALL in self.namespaces or route.namespace in self.namespaces
        return models_ok and namespaces_ok


def token_digest(token: str | bytes) -> bytes:
    raw = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(raw).digest()


def _field(secret_name: str, data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True).decode("utf-8").strip()
    except (binascii.Error, ValueError) as exc:
        raise KeySecretError(f"Secret {secret_name}: data.{key} is not base64-encoded UTF-8 text") from exc


def _names(text: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (text or "").split(",") if part.strip())


def parse_key_secret(secret: dict[str, Any], default_requests_per_minute: int) -> ApiKey:
    """One Secret (as the API server returns it, `data` base64) -> ApiKey, or KeySecretError."""
    meta = secret.get("metadata") or {}
    name = f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"
    data = secret.get("data") or {}
    token = _field(name, data, "token")
    if not token:
        raise KeySecretError(f"Secret {name}: data.token is missing or empty")
    if not TOKEN_MIN_CHARS <= len(token) <= TOKEN_MAX_CHARS or not _TOKEN_CHARS.match(token):
        raise KeySecretError(
            f"Secret {name}: data.token must be {TOKEN_MIN_CHARS}-{TOKEN_MAX_CHARS} printable ASCII"
            f" characters without spaces (it has {len(token)}); generate one with `openssl rand -hex 32`"
        )
    models = _names(_field(name, data, "models"))
    namespaces = _names(_field(name, data, "namespaces"))
    if not models and not namespaces:
        raise KeySecretError(
            f"Secret {name}: set data.models or data.namespaces (use '*' for a key that may call every model)"
        )
    rpm_text = _field(name, data, "requestsPerMinute")
    rpm = default_requests_per_minute
    if rpm_text:
        try:
            rpm = int(rpm_text)
        except ValueError:
            rpm = 0
        if rpm < 1:
            raise KeySecretError(
                f"Secret {name}: data.requestsPerMinute {rpm_text!r} must be a whole number >= 1"
            )
    return ApiKey(name, token_digest(token), models, namespaces, rpm)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class KeyStore:
    """The current keys (replaced wholesale on every Secret refresh) and their rate buckets."""

    def __init__(self, keys: tuple[ApiKey, ...] = ()) -> None:
        self._keys = keys
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, last refill time)
        self.invalid_secrets = 0
        self.loaded = False

    @property
    def keys(self) -> tuple[ApiKey, ...]:
        return self._keys

    def replace(self, keys: tuple[ApiKey, ...], invalid_secrets: int) -> None:
        self._keys = keys
        self.invalid_secrets = invalid_secrets
        self.loaded = True
        names = {key.name for key in keys}
        self._buckets = {name: bucket for name, bucket in self._buckets.items() if name in names}

    def authenticate(self, token: str) -> ApiKey | None:
        presented = token_digest(token)
        found: ApiKey | None = None
        for key in self._keys:  # every key is compared: no early exit
            if hmac.compare_digest(presented, key.digest):
                found = key
        return found

    def take(self, key: ApiKey, now: float) -> float:
        """Spend one request of `key`'s budget: 0.0 when allowed, else seconds until one is free.

        Token bucket: refills at requests_per_minute / 60 per second, holds BURST_SECONDS' worth.
        """
        rate = key.requests_per_minute / 60.0
        capacity = max(1.0, rate * BURST_SECONDS)
        tokens, last = self._buckets.get(key.name, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._buckets[key.name] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key.name] = (tokens, now)
        return (1.0 - tokens) / rate


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))

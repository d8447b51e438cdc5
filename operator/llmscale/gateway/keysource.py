"""API keys from Kubernetes Secrets: read at startup, re-read every `api_key_refresh_seconds`.

Polling rather than a watch: keys change rarely, a list of a few Secrets is cheap, and a failed
refresh simply keeps the last good keys (revocation then waits for the API server, which is
logged). The first read must succeed: a gateway that cannot read its key Secrets refuses to start
(RBAC, a missing namespace), instead of serving with no or stale keys. Secrets that do not parse
are skipped with one error line naming the Secret and the field, and counted in
llmscale_gateway_api_keys{state="invalid"}; with no valid key every request is answered 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from llmscale.errors import EnvironmentSetupError
from llmscale.gateway.auth import ApiKey, KeySecretError, KeyStore, parse_key_secret
from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)


def parse_key_secrets(
    secrets: list[dict[str, Any]], default_requests_per_minute: int
) -> tuple[tuple[ApiKey, ...], list[str]]:
    """(valid keys, one problem line per unusable Secret)."""
    keys: list[ApiKey] = []
    problems: list[str] = []
    for secret in secrets:
        try:
            keys.append(parse_key_secret(secret, default_requests_per_minute))
        except KeySecretError as exc:
            problems.append(str(exc))
    return tuple(keys), problems


class KubeKeySource:
    def __init__(
        self, config: GatewayConfig, keys: KeyStore, metrics: GatewayMetrics, api_client: client.ApiClient
    ) -> None:
        self._config = config
        self._keys = keys
        self._metrics = metrics
        self._core = client.CoreV1Api(api_client)
        self._task: asyncio.Task[None] | None = None
        self._last_problems: list[str] = []

    def _list(self) -> list[dict[str, Any]]:
        listing = self._core.list_namespaced_secret(
            self._config.api_key_namespace,
            label_selector=self._config.api_key_selector,
            _request_timeout=10,
        )
        # the same shape as the API server's JSON (data values base64), for parse_key_secret
        secrets = []
        for item in listing.items:
            meta = item.metadata
            name, namespace = (meta.name, meta.namespace) if meta is not None else (None, None)
            secrets.append(
                {"metadata": {"name": name, "namespace": namespace}, "data": dict(item.data or {})}
            )
        return secrets

    async def refresh(self) -> None:
        secrets = await asyncio.to_thread(self._list)
        keys, problems = parse_key_secrets(secrets, self._config.rate_limit_per_minute)
        if problems != self._last_problems:
            for problem in problems:
                log.error("API key not loaded: %s", problem)
        self._last_problems = problems
        self._keys.replace(keys, len(problems))
        self._metrics.api_keys.labels("valid").set(len(keys))
        self._metrics.api_keys.labels("invalid").set(len(problems))
        if not keys:
            log.error(
                "no valid API key Secret (label %s) in namespace %s: every request is refused (401)",
                self._config.api_key_selector,
                self._config.api_key_namespace,
            )

    async def start(self) -> None:
        where = (
            f"Secrets labelled {self._config.api_key_selector} in namespace {self._config.api_key_namespace}"
        )
        try:
            await self.refresh()
        except ApiException as exc:
            raise EnvironmentSetupError(
                f"--api-key-namespace: cannot list the API key {where}: HTTP {exc.status} {exc.reason}"
            ) from exc
        log.info(
            "API keys loaded: %d valid, %d invalid (%s)",
            len(self._keys.keys),
            self._keys.invalid_secrets,
            where,
        )
        self._task = asyncio.create_task(self._loop(), name="api-key-refresh")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.api_key_refresh_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # keep the last good keys; say why they may be stale
                log.warning("API key refresh failed, keeping the last %d keys: %s", len(self._keys.keys), exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

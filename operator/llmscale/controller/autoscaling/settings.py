"""Operator-wide settings of the scaling loop (flags of `llmscale operator`, or environment).

`llmscale operator` (controller/cli.py) may call `add_cli_arguments(parser)` and pass
`settings_from_args(args)` to `llmscale.controller.autoscaling.handlers.configure`; without that the loop
reads the `LLMSCALE_*` environment variables below, so it also works under a plain `kopf run`.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any

from llmscale.api import defaults as api_defaults
from llmscale.errors import UserInputError
from llmscale.metrics.gateway_scrape import check_gateway_url
from llmscale.scaling import PolicySettings
from llmscale.scaling.from_spec import (
    OVERRIDES_ANNOTATION,
    TUNABLE_FIELDS,
    parse_overrides,
    validate_overrides,
)

__all__ = [
    "OVERRIDES_ANNOTATION",
    "TUNABLE_FIELDS",
    "AutoscalerSettings",
    "add_cli_arguments",
    "parse_gpu_prices",
    "parse_overrides",
    "settings_from_args",
    "validate_overrides",
]

DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:19090"

ENV_PROMETHEUS_URL = "LLMSCALE_PROMETHEUS_URL"
ENV_INTERVAL = "LLMSCALE_SCALING_INTERVAL"
ENV_METRICS_PORT = "LLMSCALE_OPERATOR_METRICS_PORT"
ENV_OVERRIDES = "LLMSCALE_SCALING_OVERRIDES"
ENV_STATUS_INTERVAL = "LLMSCALE_STATUS_INTERVAL"
ENV_RATE_WINDOW = "LLMSCALE_RATE_WINDOW"
ENV_METRICS_HOST = "LLMSCALE_OPERATOR_METRICS_HOST"
ENV_GPU_PRICES = "LLMSCALE_GPU_PRICES"
ENV_GATEWAY_METRICS_URLS = "LLMSCALE_GATEWAY_METRICS_URLS"


@dataclass(frozen=True)
class AutoscalerSettings:
    prometheus_url: str = DEFAULT_PROMETHEUS_URL
    interval_seconds: float = api_defaults.DECISION_INTERVAL_SECONDS
    """Seconds between decision ticks: also every policy's `decision_interval_seconds` (one interval
    drives the operator's tick and the core, see `policy_settings`)."""
    metrics_port: int | None = 8081
    """Port of the operator's own /metrics on 127.0.0.1 (None: not served)."""
    metrics_host: str = "127.0.0.1"
    status_interval_seconds: float = 30.0
    """Status is written at least this often, and at once on any scale or reason change."""
    rate_window_seconds: float = 30.0
    """PromQL rate()/histogram window."""
    max_backoff_seconds: float = 60.0
    """Longest wait between Prometheus retries while it is down."""
    overrides: dict[str, float] = field(default_factory=dict)
    """ScalingPolicy fields for every deployment (per-deployment annotation wins)."""
    gpu_prices: dict[str, float] = field(default_factory=dict)
    """USD per GPU-hour by GPU catalog name, over the catalog's list prices (spec.gpuPricePerHour wins)."""
    namespaces: tuple[str, ...] = ()
    """The operator's --namespace list: the loop lists Deployments and pods only there (empty: all)."""
    gateway_metrics_urls: tuple[str, ...] = ()
    """Gateway base URLs whose /metrics the loop reads on every tick (each name may resolve to
    several pods: a headless Service). Empty: the gateway's signals come from Prometheus only."""

    def __post_init__(self) -> None:
        for name in (
            "interval_seconds",
            "status_interval_seconds",
            "rate_window_seconds",
            "max_backoff_seconds",
        ):
            value = getattr(self, name)
            if not value > 0:
                raise UserInputError(f"{name}: value {value!r} must be > 0")
        validate_overrides(self.overrides, "--scaling-overrides")
        for url in self.gateway_metrics_urls:
            check_gateway_url(url)
        for product, price in self.gpu_prices.items():
            if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
                raise UserInputError(
                    f"{ENV_GPU_PRICES}: price of {product!r} is {price!r}; expected a number >= 0"
                )

    def policy_settings(self) -> PolicySettings:
        """What `llmscale.scaling.policy_from_spec` needs from the operator's settings."""
        return PolicySettings(
            decision_interval_seconds=self.interval_seconds,
            overrides=self.overrides,
            gpu_prices=self.gpu_prices,
            gateway_read_directly=bool(self.gateway_metrics_urls),
        )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> AutoscalerSettings:
        env = dict(os.environ if environ is None else environ)
        kwargs: dict[str, Any] = {}
        if env.get(ENV_PROMETHEUS_URL):
            kwargs["prometheus_url"] = env[ENV_PROMETHEUS_URL]
        for key, name in (
            (ENV_INTERVAL, "interval_seconds"),
            (ENV_STATUS_INTERVAL, "status_interval_seconds"),
            (ENV_RATE_WINDOW, "rate_window_seconds"),
        ):
            if env.get(key):
                kwargs[name] = _number(env[key], key)
        if env.get(ENV_METRICS_PORT):
            port = env[ENV_METRICS_PORT]
            kwargs["metrics_port"] = (
                None if port in ("0", "off", "none") else int(_number(port, ENV_METRICS_PORT))
            )
        if env.get(ENV_METRICS_HOST):
            kwargs["metrics_host"] = env[ENV_METRICS_HOST]
        if env.get(ENV_GPU_PRICES):
            kwargs["gpu_prices"] = parse_gpu_prices(env[ENV_GPU_PRICES])
        if env.get(ENV_OVERRIDES):
            kwargs["overrides"] = parse_overrides(env[ENV_OVERRIDES], ENV_OVERRIDES)
        if env.get(ENV_GATEWAY_METRICS_URLS):
            urls = tuple(u.strip() for u in env[ENV_GATEWAY_METRICS_URLS].split(",") if u.strip())
            for url in urls:
                check_gateway_url(url, ENV_GATEWAY_METRICS_URLS)
            kwargs["gateway_metrics_urls"] = urls
        return cls(**kwargs)


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise UserInputError(f"{name}: value {text!r} is not a number") from None


def parse_gpu_prices(text: str) -> dict[str, float]:
    try:
        data = json.loads(text)
    except ValueError:
        raise UserInputError(f"{ENV_GPU_PRICES}: value {text!r} is not a JSON object") from None
    if not isinstance(data, dict):
        raise UserInputError(f"{ENV_GPU_PRICES}: value {text!r} is not a JSON object")
    for product, price in data.items():
        if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
            raise UserInputError(
                f"{ENV_GPU_PRICES}: price of {product!r} is {price!r}; expected a number >= 0"
            )
    return {str(k): float(v) for k, v in data.items()}


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """The scaling loop's flags, for `llmscale operator`."""
    defaults = AutoscalerSettings()
    group = parser.add_argument_group("scaling loop")
    group.add_argument(
        "--prometheus-url", default=None, help=f"Prometheus base URL ({DEFAULT_PROMETHEUS_URL})"
    )
    group.add_argument(
        "--scaling-interval",
        type=float,
        default=None,
        metavar="S",
        help=f"seconds between decisions ({api_defaults.DECISION_INTERVAL_SECONDS:g})",
    )
    group.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help=f"port of the operator's /metrics on 127.0.0.1 ({defaults.metrics_port}; 0 = off)",
    )
    group.add_argument(
        "--gateway-metrics-url",
        action="append",
        default=None,
        metavar="URL",
        help="read this gateway's /metrics on every tick for the burst (panic) signal; repeatable; "
        "a name resolving to several addresses (a headless Service) reads every pod",
    )
    group.add_argument(
        "--scaling-overrides",
        default=None,
        metavar="JSON",
        help="ScalingPolicy fields for every deployment, e.g. '{\"scale_down_delay_seconds\": 20}'",
    )


def settings_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> AutoscalerSettings:
    """Flags win over the environment, which wins over the defaults."""
    base = AutoscalerSettings.from_env(environ)
    kwargs: dict[str, Any] = {}
    if getattr(args, "prometheus_url", None):
        kwargs["prometheus_url"] = args.prometheus_url
    if getattr(args, "scaling_interval", None) is not None:
        kwargs["interval_seconds"] = args.scaling_interval
    port = getattr(args, "metrics_port", None)
    if port is not None:
        if not 0 <= port <= 65535:
            raise UserInputError(f"--metrics-port: value {port} is not a port (0-65535)")
        kwargs["metrics_port"] = port or None
    if getattr(args, "scaling_overrides", None):
        kwargs["overrides"] = parse_overrides(args.scaling_overrides, "--scaling-overrides")
    if getattr(args, "namespace", None):
        kwargs["namespaces"] = tuple(args.namespace)
    if getattr(args, "gateway_metrics_url", None):
        kwargs["gateway_metrics_urls"] = tuple(check_gateway_url(u) for u in args.gateway_metrics_url)
    if not kwargs:
        return base
    merged = {f.name: getattr(base, f.name) for f in fields(base)} | kwargs
    return AutoscalerSettings(**merged)

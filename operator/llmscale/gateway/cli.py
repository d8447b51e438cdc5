"""`llmscale gateway`: the OpenAI-compatible front door (see docs/gateway.md)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "gateway",
        help="run the OpenAI-compatible gateway (routes by model, holds requests at zero replicas)",
        description=(
            "Route OpenAI requests by `model` to ready LLMDeployment replicas (EndpointSlices), "
            "least outstanding requests first; hold requests while a deployment is at zero and "
            "ask the operator to wake it; 503 + Retry-After only on overflow or hold timeout."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    p.add_argument(
        "--namespace",
        action="append",
        metavar="NS",
        help="watch only this namespace (repeatable; default: all namespaces)",
    )
    p.add_argument(
        "--queue-size", type=int, default=100, metavar="N", help="held requests per deployment (100)"
    )
    p.add_argument(
        "--hold-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="max seconds a request waits for a replica (300)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=600.0,
        metavar="S",
        help="max seconds of one forwarded request (600)",
    )
    p.add_argument(
        "--keepalive-interval",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between SSE keep-alive comments to held streaming clients (5)",
    )
    p.add_argument("--retry-after", type=int, default=5, metavar="S", help="Retry-After seconds on a 503 (5)")
    p.add_argument(
        "--activation-refresh",
        type=float,
        default=5.0,
        metavar="S",
        help="re-send the activation signal this often while requests stay held (5)",
    )
    p.add_argument(
        "--connect-timeout", type=float, default=5.0, metavar="S", help="seconds to connect to a replica (5)"
    )
    p.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="on SIGTERM, seconds in-flight requests get to finish (30)",
    )
    p.add_argument(
        "--auth",
        choices=["api-key", "none"],
        default="api-key",
        help="api-key: every request needs a bearer key from a key Secret (default); none: no"
        " authentication (only for a gateway nothing untrusted can reach)",
    )
    p.add_argument(
        "--api-key-namespace",
        metavar="NS",
        default="",
        help="namespace of the API key Secrets (default: $POD_NAMESPACE, else llmscale-system)",
    )
    p.add_argument(
        "--api-key-selector",
        metavar="SELECTOR",
        default="llmscale.dev/gateway-api-key=true",
        help="label selector of the API key Secrets (default: %(default)s)",
    )
    p.add_argument(
        "--rate-limit",
        type=int,
        default=600,
        metavar="N",
        help="requests per minute per API key unless its Secret sets requestsPerMinute (600; >= 1)",
    )
    p.add_argument(
        "--api-key-refresh",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds between re-reads of the key Secrets: rotation and revocation delay (30)",
    )
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--json", action="store_true", help="print the startup line as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from llmscale.gateway.config import GatewayConfig
    from llmscale.gateway.server import serve

    config = GatewayConfig(
        host=args.host,
        port=args.port,
        namespaces=tuple(args.namespace or ()),
        queue_size=args.queue_size,
        hold_timeout_seconds=args.hold_timeout,
        request_timeout_seconds=args.request_timeout,
        keepalive_interval_seconds=args.keepalive_interval,
        retry_after_seconds=args.retry_after,
        activation_refresh_seconds=args.activation_refresh,
        connect_timeout_seconds=args.connect_timeout,
        auth=args.auth,
        api_key_namespace=args.api_key_namespace,
        api_key_selector=args.api_key_selector,
        rate_limit_per_minute=args.rate_limit,
        api_key_refresh_seconds=args.api_key_refresh,
    )
    if not args.shutdown_timeout >= 0:
        from llmscale.errors import UserInputError

        raise UserInputError(f"--shutdown-timeout: value {args.shutdown_timeout!r} must be >= 0")
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(config, shutdown_timeout_seconds=args.shutdown_timeout, json_output=args.json))
    return 0

"""`llmscale operator [--namespace NS] ...`: run the LLMDeployment operator (kopf)."""

from __future__ import annotations

import argparse
import importlib
import os
import secrets
from typing import Any

from llmscale.errors import EnvironmentSetupError

OPTIONAL_HANDLER_MODULES = ("llmscale.controller.autoscaling.handlers",)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "operator",
        help="run the LLMDeployment operator against the current KUBECONFIG",
        description="Reconcile LLMDeployments into vLLM Deployments, Services, PDBs and PodMonitors.",
    )
    p.add_argument(
        "--namespace",
        action="append",
        metavar="NS",
        help="watch only this namespace (repeatable; globs allowed); default: all namespaces",
    )
    p.add_argument(
        "--liveness",
        metavar="URL",
        help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz (default: off)",
    )
    p.add_argument(
        "--priority",
        type=int,
        default=None,
        help="kopf peering priority of this replica (highest is active); default: random when --peering"
        " is given, so exactly one of several replicas works",
    )
    p.add_argument(
        "--peering",
        metavar="NAME",
        help="coordinate with other operator replicas through kopf peering object NAME (needs kopf's"
        " peering CRDs, installed by the Helm chart); default: standalone",
    )
    p.add_argument(
        "--peering-lifetime",
        type=_positive_seconds,
        default=None,
        metavar="SECONDS",
        help="with --peering: how long this replica's peering record counts as alive without a refresh"
        " (kopf's default 60); a replica that dies without saying goodbye is taken over after at most"
        " this long",
    )
    p.add_argument(
        "--install-crd",
        action="store_true",
        help="server-side apply the LLMDeployment CRD (generated from the models) before starting",
    )
    p.add_argument(
        "--network-policy",
        choices=["on", "off"],
        default="on",
        help="render a NetworkPolicy per LLMDeployment admitting only the gateway and Prometheus to"
        " the vLLM pods (default: on)",
    )
    p.add_argument(
        "--gateway-namespace",
        metavar="NS",
        default=os.environ.get("POD_NAMESPACE", "llmscale-system"),
        help="namespace of the llmscale gateway pods (default: $POD_NAMESPACE, else llmscale-system)",
    )
    p.add_argument(
        "--gateway-pod-labels",
        metavar="K=V,...",
        default="app.kubernetes.io/name=llmscale,app.kubernetes.io/component=gateway",
        help="labels of the gateway pods (default: %(default)s)",
    )
    p.add_argument(
        "--prometheus-namespace",
        metavar="NS",
        default="monitoring",
        help="namespace of the Prometheus pods that scrape vLLM (default: monitoring)",
    )
    p.add_argument(
        "--prometheus-pod-labels",
        metavar="K=V,...",
        default="app.kubernetes.io/name=prometheus",
        help="labels of the Prometheus pods (default: %(default)s)",
    )
    p.add_argument("--verbose", action="store_true", help="debug logging")
    p.add_argument("--json", action="store_true", help="log as JSON lines")
    try:  # the scaling loop's own flags, when that module is part of this build
        from llmscale.controller.autoscaling.settings import add_cli_arguments
    except ModuleNotFoundError as exc:
        if exc.name != "llmscale.controller.autoscaling.settings":
            raise
    else:
        add_cli_arguments(p)
    p.set_defaults(func=run)


def _positive_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds >= 1")
    return value


def _install_crd() -> None:
    from kubernetes.client.exceptions import ApiException

    from llmscale.api.crd import build_crd
    from llmscale.controller.kube import FIELD_MANAGER, KubeApi

    api = KubeApi.from_environment()
    crd = build_crd()
    path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
    try:
        api._call(  # one-off request outside the managed kinds
            "PATCH",
            path,
            body=crd,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
    except ApiException as exc:
        raise EnvironmentSetupError(
            f"--install-crd: the API server refused the CRD: HTTP {exc.status} {exc.body}"
        ) from exc


def network_policy_settings(args: argparse.Namespace) -> Any:
    from llmscale.resources.networkpolicy import NetworkPolicySettings, Peer, parse_label_map

    return NetworkPolicySettings(
        enabled=args.network_policy == "on",
        gateway=Peer(
            args.gateway_namespace, parse_label_map("--gateway-pod-labels", args.gateway_pod_labels)
        ),
        prometheus=Peer(
            args.prometheus_namespace,
            parse_label_map("--prometheus-pod-labels", args.prometheus_pod_labels),
        ),
    )


def run(args: argparse.Namespace) -> int:
    import kopf

    from llmscale.controller.reconcile import configure_network_policy
    from llmscale.kubeconfig import load_kube_config

    # flags and settings first: a bad value is a one-line usage error even without a cluster
    configure_network_policy(network_policy_settings(args))
    importlib.import_module("llmscale.controller.handlers")
    memo = kopf.Memo()
    for name in OPTIONAL_HANDLER_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        settings_from_args = getattr(module, "settings_from_args", None)
        if settings_from_args is not None:
            memo.autoscaler_settings = settings_from_args(args)
    load_kube_config()
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.JSON if args.json else kopf.LogFormat.FULL)
    if args.install_crd:
        _install_crd()
    namespaces = tuple(args.namespace or ())
    # kopf pauses every operator that sees a live peer of the same priority, so replicas that all
    # ran at one priority would all stand still; a random one per process elects one active peer.
    priority = args.priority if args.priority is not None else secrets.randbelow(1_000_000) + 1
    settings = kopf.OperatorSettings()
    if args.peering_lifetime is not None:
        settings.peering.lifetime = args.peering_lifetime
    kopf.run(
        settings=settings,
        priority=priority,
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=args.peering is None,
        peering_name=args.peering,
        liveness_endpoint=args.liveness,
        memo=memo,
    )
    return 0

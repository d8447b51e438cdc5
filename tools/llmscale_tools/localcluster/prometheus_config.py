"""Prometheus configuration: pod discovery against the local apiserver, PodMonitor-style labels.

Debian's Prometheus has no Kubernetes service discovery compiled in, so targets come from
`file_sd_configs` kept current by llmscale_tools.localcluster.pod_discovery, which writes the same
`__meta_kubernetes_pod_*` labels kubernetes_sd (role pod) would. `discovery="kubernetes"`
renders the equivalent job for a Prometheus that has it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmscale_tools.localcluster.layout import StateLayout
from llmscale_tools.localcluster.pki import ADMIN
from llmscale_tools.localcluster.ports import LOOPBACK

SCRAPE_INTERVAL = "1s"
EVALUATION_INTERVAL = "1s"
JOB_NAME = "kubernetes-pods"


def targets_file(layout: StateLayout) -> Path:
    return layout.prometheus_dir / "targets" / "pods.json"


GATEWAY_JOB_NAME = "llmscale-gateway"


def gateway_targets_glob(layout: StateLayout) -> Path:
    """Processes outside the cluster (the gateway run by the demo and e2e tests) register here:
    one JSON file_sd file each, e.g. `gateway-<port>.json` = [{"targets": ["127.0.0.1:PORT"]}]."""
    return layout.prometheus_dir / "targets" / "gateway-*.json"


def render_prometheus_config(
    apiserver_url: str, layout: StateLayout, *, discovery: str = "file"
) -> dict[str, Any]:
    """The scrape config of interfaces.md: job `kubernetes-pods`, opt-in by annotation."""
    pki = layout.pki
    tls = {
        "ca_file": str(pki.ca_cert),
        "cert_file": str(pki.client_cert(ADMIN)),
        "key_file": str(pki.client_key(ADMIN)),
    }
    relabel_configs: list[dict[str, Any]] = [
        # opt in per pod, as the prometheus.io/* convention and a PodMonitor selector do
        {
            "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
            "action": "keep",
            "regex": "true",
        },
        # finished pods have no process behind their IP any more
        {
            "source_labels": ["__meta_kubernetes_pod_phase"],
            "action": "drop",
            "regex": "Succeeded|Failed",
        },
        {
            "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
            "action": "replace",
            "regex": "(.+)",
            "target_label": "__metrics_path__",
        },
        {
            "source_labels": [
                "__meta_kubernetes_pod_ip",
                "__meta_kubernetes_pod_annotation_prometheus_io_port",
            ],
            "action": "replace",
            "regex": "(.+);(\\d+)",
            "replacement": "$1:$2",
            "target_label": "__address__",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_node_name"], "target_label": "node"},
        {
            "source_labels": ["__meta_kubernetes_pod_label_llmscale_dev_deployment"],
            "target_label": "llmdeployment",
        },
    ]
    discovery_config: dict[str, Any]
    if discovery == "kubernetes":
        discovery_config = {
            "kubernetes_sd_configs": [{"role": "pod", "api_server": apiserver_url, "tls_config": tls}]
        }
    else:
        # inotify picks up each rewrite at once; the refresh is only a safety net
        discovery_config = {
            "file_sd_configs": [{"files": [str(targets_file(layout))], "refresh_interval": "5s"}]
        }
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "evaluation_interval": EVALUATION_INTERVAL,
            "scrape_timeout": SCRAPE_INTERVAL,
        },
        "scrape_configs": [
            {
                "job_name": JOB_NAME,
                "honor_labels": False,
                **discovery_config,
                "relabel_configs": relabel_configs,
            },
            # The gateway labels its own series with namespace/llmdeployment: keep them.
            {
                "job_name": GATEWAY_JOB_NAME,
                "honor_labels": True,
                "file_sd_configs": [{"files": [str(gateway_targets_glob(layout))], "refresh_interval": "5s"}],
            },
        ],
    }


def prometheus_command(binary: Path, layout: StateLayout, port: int) -> list[str]:
    directory = layout.prometheus_dir
    return [
        str(binary),
        f"--config.file={directory / 'prometheus.yml'}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        "--storage.tsdb.retention.time=1d",
        # lets tests and the demo reload or stop it over HTTP
        "--web.enable-lifecycle",
        "--log.level=warn",
    ]


def write_prometheus_config(apiserver_url: str, layout: StateLayout) -> Path:
    layout.prometheus_dir.mkdir(parents=True, exist_ok=True)
    target = layout.prometheus_dir / "prometheus.yml"
    target.write_text(yaml.safe_dump(render_prometheus_config(apiserver_url, layout), sort_keys=False))
    return target

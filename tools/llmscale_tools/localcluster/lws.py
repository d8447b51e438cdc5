"""The LeaderWorkerSet controller of the local cluster: config, webhook certificate, admission.

The real controller (sigs.k8s.io/lws, built by `cluster build`) runs as a process on loopback,
as everything here does. In a real cluster it runs as a pod behind a Service and rotates its
own webhook certificate; here its internal certificate management is off and instead:

- its webhook serving certificate (SAN 127.0.0.1) is issued by the cluster's CA at `cluster up`;
- its CRD (the one of the same version, kept next to the binary) and its mutating and
  validating webhook configurations are applied by `cluster up`, the webhooks pointed at
  https://127.0.0.1:<port> with the cluster CA as caBundle, with the same rules, paths, failure
  policies and pod object selectors as the project's own manifests.

Pure: paths and ports in, files and manifests out (the caller applies them).
"""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any, Final

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from llmscale.resources.leaderworkerset import LWS_GROUP, LWS_PLURAL
from llmscale_tools.localcluster.layout import StateLayout
from llmscale_tools.localcluster.pki import _issue, _name, _write_cert, _write_key
from llmscale_tools.localcluster.ports import LOOPBACK, ClusterPorts

COMPONENT: Final = "lws"
CRD_NAME: Final = f"{LWS_PLURAL}.{LWS_GROUP}"
# The label every pod of a LeaderWorkerSet carries; the pod webhooks only look at those pods.
SET_NAME_LABEL: Final = "leaderworkerset.sigs.k8s.io/name"
MUTATING_CONFIGURATION: Final = "llmscale-localcluster-lws-mutating"
VALIDATING_CONFIGURATION: Final = "llmscale-localcluster-lws-validating"


def work_dir(layout: StateLayout) -> Path:
    return layout.work_dir(COMPONENT)


def cert_dir(layout: StateLayout) -> Path:
    """Where controller-runtime's webhook server reads tls.crt and tls.key."""
    return work_dir(layout) / "certs"


def issue_webhook_certificate(layout: StateLayout, now: datetime.datetime | None = None) -> None:
    """A serving pair for 127.0.0.1 signed by the cluster CA (the apiserver trusts it)."""
    pki = layout.pki
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key: Any = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    cert, key = _issue(
        ca_cert,
        ca_key,
        _name("lws-webhook"),
        server_dns=("localhost",),
        server_ips=(LOOPBACK,),
        now=now or datetime.datetime.now(datetime.UTC),
    )
    directory = cert_dir(layout)
    directory.mkdir(parents=True, exist_ok=True)
    _write_cert(directory / "tls.crt", cert)
    _write_key(directory / "tls.key", key)


def config_yaml(layout: StateLayout, ports: ClusterPorts) -> str:
    """The controller's Configuration (config.lws.x-k8s.io/v1alpha1): loopback only, one
    instance (no leader election), certificates provided (no internal rotation)."""
    config = {
        "apiVersion": "config.lws.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "webhook": {"host": LOOPBACK, "port": ports.lws_webhook, "certDir": str(cert_dir(layout))},
        "metrics": {"bindAddress": f"{LOOPBACK}:{ports.lws_metrics}"},
        "health": {"healthProbeBindAddress": f"{LOOPBACK}:{ports.lws_health}"},
    }
    return yaml.safe_dump(config, sort_keys=False)


def command(bin_dir: Path, layout: StateLayout, ports: ClusterPorts, kubeconfig: Path) -> list[str]:
    config = work_dir(layout) / "config.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(config_yaml(layout, ports))
    return [str(bin_dir / "lws"), f"--config={config}", f"--kubeconfig={kubeconfig}", "--zap-log-level=info"]


def readyz_url(ports: ClusterPorts) -> str:
    return f"http://{LOOPBACK}:{ports.lws_health}/readyz"


def _webhook(
    name: str, path: str, ports: ClusterPorts, ca_bundle: str, operations: list[str], pods: bool
) -> dict[str, Any]:
    rule = (
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": operations, "resources": ["pods"]}
        if pods
        else {
            "apiGroups": [LWS_GROUP],
            "apiVersions": ["v1"],
            "operations": operations,
            "resources": ["leaderworkersets"],
        }
    )
    webhook: dict[str, Any] = {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"url": f"https://{LOOPBACK}:{ports.lws_webhook}{path}", "caBundle": ca_bundle},
        "failurePolicy": "Fail",
        "sideEffects": "None",
        "rules": [rule],
    }
    if pods:
        webhook["objectSelector"] = {"matchExpressions": [{"key": SET_NAME_LABEL, "operator": "Exists"}]}
    return webhook


def webhook_configurations(layout: StateLayout, ports: ClusterPorts) -> list[dict[str, Any]]:
    """Mutating and validating webhooks for LeaderWorkerSets and their pods, on loopback."""
    ca_bundle = base64.b64encode(layout.pki.ca_cert.read_bytes()).decode()
    create_update = ["CREATE", "UPDATE"]
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": MUTATING_CONFIGURATION},
            "webhooks": [
                _webhook(
                    "mleaderworkerset.kb.io",
                    "/mutate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
                    ports,
                    ca_bundle,
                    create_update,
                    pods=False,
                ),
                _webhook("mpod.kb.io", "/mutate--v1-pod", ports, ca_bundle, ["CREATE"], pods=True),
            ],
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": VALIDATING_CONFIGURATION},
            "webhooks": [
                _webhook(
                    "vleaderworkerset.kb.io",
                    "/validate-leaderworkerset-x-k8s-io-v1-leaderworkerset",
                    ports,
                    ca_bundle,
                    create_update,
                    pods=False,
                ),
                _webhook("vpod.kb.io", "/validate--v1-pod", ports, ca_bundle, create_update, pods=True),
            ],
        },
    ]


def crd_manifest(bin_dir: Path) -> dict[str, Any]:
    """The LeaderWorkerSet CRD of the built version (linked next to the binary)."""
    from llmscale_tools.localcluster.versions import LWS_CRD_FILE

    loaded = yaml.safe_load((bin_dir / LWS_CRD_FILE).read_text())
    if not isinstance(loaded, dict) or loaded.get("kind") != "CustomResourceDefinition":
        raise ValueError(f"{bin_dir / LWS_CRD_FILE}: not a CustomResourceDefinition")
    return loaded

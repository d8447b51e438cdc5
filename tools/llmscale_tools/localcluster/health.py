"""Readiness probes of the cluster's components over loopback HTTP(S)."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from pathlib import Path

PROBE_TIMEOUT_SECONDS = 2.0


def http_ok(url: str, *, context: ssl.SSLContext | None = None) -> bool:
    """True when GET url answers 200 within the probe timeout."""
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_SECONDS, context=context) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, ssl.SSLError):
        return False


def client_tls_context(ca_file: Path, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """Verifies the apiserver against our CA and authenticates with a client certificate."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def insecure_tls_context() -> ssl.SSLContext:
    """For controller-manager and scheduler /healthz: they serve self-signed certificates they
    generate at start-up, and the probe only asks "are you up?" over loopback."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context

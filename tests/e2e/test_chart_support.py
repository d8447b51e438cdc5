"""Helpers shared by the chart's e2e test files (test_chart_*.py); no tests in this module.

helm comes from $HELM, the local control plane's tools (`.localcluster/bin/helm`, built by
`llmscale cluster build`) or PATH (kind mode on a laptop).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmscale"
CRD_NAME = "llmdeployments.llmscale.dev"


def helm_path() -> Path:
    candidates = (os.environ.get("HELM"), REPO / ".localcluster" / "bin" / "helm", shutil.which("helm"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.fail("no helm binary: run `make cluster-build` (it builds .localcluster/bin/helm) or set HELM")


@dataclass(frozen=True)
class Helm:
    """helm, optionally bound to a cluster's kubeconfig."""

    binary: Path
    kubeconfig: Path | None = None

    def run(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        argv = [str(self.binary), *args]
        if self.kubeconfig is not None:
            argv.append(f"--kubeconfig={self.kubeconfig}")
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and completed.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed ({completed.returncode}): {completed.stderr.strip()}")
        return completed


def helm_for(cluster: Any) -> Helm:
    """helm against the e2e cluster (tests/e2e/conftest.py `cluster` fixture)."""
    return Helm(helm_path(), Path(cluster.kubeconfig))


def adopt_crd_into_release(kubectl: Callable[..., Any], release: str, namespace: str) -> None:
    """Let `helm install` take over a CRD that another test applied with kubectl.

    Helm refuses to install over an object it does not own; the label and annotations below
    are Helm's ownership record (docs/install.md shows the same for users).
    """
    exists = kubectl("get", f"crd/{CRD_NAME}", "-o", "name", check=False)
    if exists.returncode != 0:
        return
    kubectl("label", f"crd/{CRD_NAME}", "app.kubernetes.io/managed-by=Helm", "--overwrite")
    kubectl(
        "annotate",
        f"crd/{CRD_NAME}",
        f"meta.helm.sh/release-name={release}",
        f"meta.helm.sh/release-namespace={namespace}",
        "--overwrite",
    )

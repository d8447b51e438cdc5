"""Render what `make scan` scans (run with the project's venv: it imports llmscale).

- the Helm chart with its default values and with every optional object turned on;
- the children the operator builds for every LLMDeployment in examples/: the Deployment,
  Service, PodDisruptionBudget (at two replicas, where the operator creates one), NetworkPolicy
  and PodMonitor, through the same pure builders reconcile() uses.

Usage: python tests/scan/render.py OUT_DIR HELM_BINARY
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from llmscale.api import LLMDeployment
from llmscale.resources import (
    build_deployment,
    build_pdb,
    build_pod_monitor,
    build_service,
    evaluate_fit,
    owner_reference,
    resolve_serving,
)
from llmscale.resources.networkpolicy import NetworkPolicySettings, build_network_policy

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "llmscale"
# The chart as a production install would set it: every optional object on.
CHART_VALUE_SETS: dict[str, list[str]] = {
    "defaults": [],
    "everything-on": [
        "--set", "operator.replicas=2",
        "--set", "monitoring.serviceMonitor.enabled=true",
        "--set", "monitoring.podMonitor.enabled=true",
        "--set", "monitoring.dashboard.enabled=true",
        "--set", "image.digest=sha256:" + "0" * 64,
    ],
}  # fmt: skip


def render_chart(helm: Path, out: Path) -> list[Path]:
    written = []
    for name, flags in CHART_VALUE_SETS.items():
        completed = subprocess.run(
            [str(helm), "template", "llmscale", str(CHART), "--namespace", "llmscale-system", *flags],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            sys.exit(f"render.py: helm template ({name}) failed: {completed.stderr.strip()}")
        path = out / f"chart-{name}.yaml"
        path.write_text(completed.stdout)
        written.append(path)
    return written


def children(resource: LLMDeployment) -> list[dict[str, Any]]:
    verdict = evaluate_fit(resource.spec)
    serving = resolve_serving(resource.spec, verdict.plan)
    owner = owner_reference(resource.api_version, resource.kind, resource.metadata.name, "0" * 8)
    return [
        build_deployment(resource, serving, owner, 2),
        build_service(resource, owner),
        build_pdb(resource, owner),
        build_network_policy(resource, owner, NetworkPolicySettings()),
        build_pod_monitor(resource, owner),
    ]


def render_examples(out: Path) -> list[Path]:
    written = []
    for example in sorted((REPO / "examples").glob("*.yaml")):
        for body in yaml.safe_load_all(example.read_text()):
            if not body or body.get("kind") != "LLMDeployment":
                continue
            # as `kubectl apply -n team-a -f examples/...` would create it (not in "default")
            body.setdefault("metadata", {}).setdefault("namespace", "team-a")
            resource = LLMDeployment.from_body(body)
            path = out / f"example-{example.stem}-{resource.metadata.name}.yaml"
            path.write_text(yaml.safe_dump_all(children(resource), sort_keys=False))
            written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.exit("usage: render.py OUT_DIR HELM_BINARY")
    out, helm = Path(argv[0]), Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.yaml"):
        stale.unlink()
    paths = render_chart(helm, out) + render_examples(out)
    print(f"render.py: {len(paths)} files in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

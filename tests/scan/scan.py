"""`make scan`: the admission-pipeline scanners over what llmscale ships, against an allow-list.

Runs in its own virtualenv (.scan-venv/, tests/scan/requirements.txt), never the project's:
- checkov (framework kubernetes) on the rendered chart and on the children the operator renders
  for every example (tests/scan/render.py writes them);
- hadolint on images/*Dockerfile;
- schema validation of every rendered object against the Kubernetes OpenAPI of the version the
  local cluster builds (api/openapi-spec/swagger.json of the k8s.io/kubernetes module, already in
  the Go module cache: nothing is downloaded), strict like `kubeconform -strict`: unknown fields
  are errors, int-or-string and quantities accept both forms. Custom resources (PodMonitor, ...)
  have no schema there and are counted as skipped.

Every finding must match an entry of tests/scan/allowlist.yaml (id, a glob over
"<file>::<resource>", reason), and every entry's id must be listed in docs/install.md with its
reason; a new finding, an entry that matches nothing any more, or an undocumented entry fails.

Usage: scan.py RENDERED_DIR SWAGGER_JSON [--report | --self-test]
(--self-test scans a deliberately careless Deployment and fails unless the scanners flag it.)
"""

from __future__ import annotations

import copy
import fnmatch
import json
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
ALLOWLIST = REPO / "tests" / "scan" / "allowlist.yaml"
INSTALL_DOC = REPO / "docs" / "install.md"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Finding:
    scanner: str
    id: str
    where: str  # "<file>::<resource>"
    message: str


# ---- checkov ------------------------------------------------------------------------------------
def checkov(rendered: Path) -> list[Finding]:
    completed = subprocess.run(
        [str(BIN / "checkov"), "-d", str(rendered), "--framework", "kubernetes", "-o", "json", "--quiet",
         "--compact", "--skip-download"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if completed.returncode not in (0, 1):
        sys.exit(f"scan: checkov failed ({completed.returncode}): {completed.stderr.strip()[-2000:]}")
    report = json.loads(completed.stdout or "{}")
    reports = report if isinstance(report, list) else [report]
    findings = []
    for one in reports:
        for failed in (one.get("results") or {}).get("failed_checks", []):
            file = Path(failed.get("file_path", "?")).name
            findings.append(
                Finding("checkov", failed["check_id"], f"{file}::{failed['resource']}", failed["check_name"])
            )
    return findings


# ---- hadolint -----------------------------------------------------------------------------------
def hadolint() -> list[Finding]:
    dockerfiles = sorted((REPO / "images").glob("*Dockerfile"))
    completed = subprocess.run(
        [str(BIN / "hadolint"), "-f", "json", "--no-fail", *map(str, dockerfiles)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if completed.returncode != 0:
        sys.exit(f"scan: hadolint failed ({completed.returncode}): {completed.stderr.strip()}")
    return [
        Finding("hadolint", item["code"], f"{Path(item['file']).name}::line {item['line']}", item["message"])
        for item in json.loads(completed.stdout or "[]")
    ]


# ---- Kubernetes schemas -------------------------------------------------------------------------
_INT_OR_STRING = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"


def _strict(node: Any) -> Any:
    """OpenAPI v2 -> JSON schema as kubeconform -strict reads it."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("format") == "int-or-string":
        return dict(_INT_OR_STRING)
    # extension keywords go; a "properties" map keeps every field name (CRD schemas have fields
    # named x-kubernetes-validations, ...)
    out = {
        key: ({name: _strict(sub) for name, sub in value.items()} if key == "properties" else _strict(value))
        for key, value in node.items()
        if not key.startswith("x-kubernetes-")
    }
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


class KubernetesSchemas:
    def __init__(self, swagger_path: Path) -> None:
        swagger = json.loads(swagger_path.read_text())
        definitions = _strict(swagger["definitions"])
        definitions[_QUANTITY] = {"anyOf": [{"type": "string"}, {"type": "number"}]}
        self._root = {"definitions": definitions}
        self._by_gvk: dict[tuple[str, str], str] = {}
        for name, definition in swagger["definitions"].items():
            for gvk in definition.get("x-kubernetes-group-version-kind", []):
                group, version = gvk.get("group", ""), gvk["version"]
                api_version = f"{group}/{version}" if group else version
                self._by_gvk[(api_version, gvk["kind"])] = name

    def validator(self, api_version: str, kind: str) -> jsonschema.Draft4Validator | None:
        name = self._by_gvk.get((api_version, kind))
        if name is None:
            return None
        schema = copy.copy(self._root)
        schema["$ref"] = f"#/definitions/{name}"
        return jsonschema.Draft4Validator(schema)


def schema_findings(rendered: Path, swagger: Path, skipped: Counter[str]) -> list[Finding]:
    schemas = KubernetesSchemas(swagger)
    findings = []
    for path in sorted(rendered.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            kind = doc.get("kind", "?")
            resource = f"{kind}.{(doc.get('metadata') or {}).get('namespace', '')}.{doc['metadata']['name']}"
            validator = schemas.validator(doc.get("apiVersion", ""), kind)
            if validator is None:
                skipped[f"{doc.get('apiVersion')}/{kind}"] += 1
                continue
            for error in validator.iter_errors(doc):
                field = ".".join(str(p) for p in error.absolute_path) or "(root)"
                findings.append(
                    Finding("schema", "K8S_SCHEMA", f"{path.name}::{resource}", f"{field}: {error.message}")
                )
    return findings


# ---- the allow-list ------------------------------------------------------------------------------
def load_allowlist() -> list[dict[str, str]]:
    entries = yaml.safe_load(ALLOWLIST.read_text()) or []
    for i, entry in enumerate(entries):
        for key in ("id", "where", "reason"):
            if not str(entry.get(key) or "").strip():
                sys.exit(f"scan: {ALLOWLIST.relative_to(REPO)}: entry {i} has no {key}")
    return entries


SELF_TEST_MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: careless, namespace: team-a}
spec:
  selector: {matchLabels: {app: careless}}
  template:
    metadata: {labels: {app: careless}}
    spec:
      containers:
        - name: c
          image: nginx:latest
          securityContext: {privileged: true}
          resourcez: {}
"""


def self_test() -> int:
    """The step must be able to fail: a careless Deployment gives new checkov and schema findings."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "careless.yaml").write_text(SELF_TEST_MANIFEST)
        skipped: Counter[str] = Counter()
        swagger = Path(sys.argv[2])
        findings = checkov(Path(tmp)) + schema_findings(Path(tmp), swagger, skipped)
    ids = {f.id for f in findings}
    expected = {"CKV_K8S_16", "K8S_SCHEMA"}  # privileged container; unknown field `resourcez`
    if not expected <= ids:
        print(
            f"scan: self-test: expected {sorted(expected)} among the findings, got {sorted(ids)}",
            file=sys.stderr,
        )
        return 1
    schema = [f.message for f in findings if f.id == "K8S_SCHEMA"]
    print(f"scan: self-test ok: a careless Deployment gives {len(findings)} findings (e.g. {schema[0]})")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and not Path(argv[1]).is_file():
        sys.exit(f"scan: no Kubernetes OpenAPI document at {argv[1]} (the k8s.io/kubernetes Go module)")
    if "--self-test" in argv:
        return self_test()
    report_all = "--report" in argv
    args = [a for a in argv if a != "--report"]
    if len(args) != 2:
        sys.exit("usage: scan.py RENDERED_DIR SWAGGER_JSON [--report]")
    rendered, swagger = Path(args[0]), Path(args[1])
    skipped: Counter[str] = Counter()
    findings = checkov(rendered) + hadolint() + schema_findings(rendered, swagger, skipped)
    entries = load_allowlist()
    used = [0] * len(entries)
    new: list[Finding] = []
    for finding in findings:
        match = next(
            (
                i
                for i, e in enumerate(entries)
                if e["id"] == finding.id and fnmatch.fnmatch(finding.where, e["where"])
            ),
            None,
        )
        if match is None:
            new.append(finding)
        else:
            used[match] += 1
    install_doc = INSTALL_DOC.read_text()
    undocumented = sorted({e["id"] for e in entries if e["id"] not in install_doc})
    stale = [e for e, count in zip(entries, used, strict=True) if count == 0]

    by_scanner = Counter(f.scanner for f in findings)
    print(
        "scan: findings by scanner: " + ", ".join(f"{k} {v}" for k, v in sorted(by_scanner.items())) or "none"
    )
    print(f"scan: {len(findings)} findings, {len(findings) - len(new)} allow-listed, {len(new)} new")
    if skipped:
        print("scan: no Kubernetes schema (custom resources), not schema-checked: "
              + ", ".join(f"{k} x{v}" for k, v in sorted(skipped.items())))  # fmt: skip
    if report_all:
        for f in findings:
            print(f"  {f.scanner:8} {f.id:12} {f.where}  {f.message}")
    for f in new:
        print(f"scan: NEW {f.scanner} {f.id} {f.where}: {f.message}", file=sys.stderr)
    for e in stale:
        print(
            f"scan: allow-list entry {e['id']} {e['where']} matches nothing any more; remove it",
            file=sys.stderr,
        )
    for check in undocumented:
        print(f"scan: allow-listed {check} is not listed in docs/install.md with its reason", file=sys.stderr)
    return 1 if new or stale or undocumented else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

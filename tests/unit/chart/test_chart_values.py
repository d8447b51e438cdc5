"""Pure checks of charts/llmscale (no helm binary): generated files fresh, values documented,
schema strict, templates use only values that exist, CRD copy identical to crds/."""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "llmscale"
HACK = CHART / "hack"


def _load(name: str) -> ModuleType:
    # The generators are scripts beside the chart (not part of the llmscale package) that
    # import their sibling values_doc by name, so their folder goes on sys.path.
    if str(HACK) not in sys.path:
        sys.path.insert(0, str(HACK))
    return importlib.import_module(name)


gen_schema = _load("gen_schema")
gen_readme = _load("gen_readme")
values_doc = _load("values_doc")


def test_values_schema_json_is_generated_from_values_yaml() -> None:
    committed = (CHART / "values.schema.json").read_text()
    assert committed == gen_schema.render(), "stale: run python3 charts/llmscale/hack/gen_schema.py"


def test_chart_readme_is_generated_from_values_yaml() -> None:
    committed = (CHART / "README.md").read_text()
    assert committed == gen_readme.render(), "stale: run python3 charts/llmscale/hack/gen_readme.py"


def test_check_mode_reports_a_stale_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "values.schema.json"
    stale.write_text("{}\n")
    monkeypatch.setattr(gen_schema, "SCHEMA_PATH", stale)
    assert gen_schema.main(["--check"]) == 1
    assert stale.read_text() == "{}\n"


def test_every_value_has_a_description() -> None:
    values, docs = values_doc.load_values()
    paths = values_doc.documented_paths(values, docs)
    assert len(paths) > 50
    assert all(docs[path].description for path, _ in paths)


def test_an_undocumented_value_is_refused() -> None:
    text = "# Documented.\ndocumented: 1\nundocumented: 2\n"
    docs = values_doc.read_key_docs(text)
    with pytest.raises(values_doc.ValuesDocError, match="'undocumented' has no description"):
        values_doc.documented_paths(yaml.safe_load(text), docs)


def test_annotations_are_parsed_and_list_item_keys_skipped() -> None:
    text = (
        "# The list.\n"
        '# +schema: {"items": {"type": "string"}}\n'
        "things:\n"
        "  - name: not-a-value\n"
        "    value: x\n"
        "# After the list.\n"
        "after: true\n"
    )
    docs = values_doc.read_key_docs(text)
    assert set(docs) == {("things",), ("after",)}
    assert docs[("things",)].schema_patch == {"items": {"type": "string"}}
    assert docs[("things",)].description == "The list."


def _object_nodes(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield where, node
        for key, child in node.items():
            yield from _object_nodes(child, f"{where}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _object_nodes(child, f"{where}/{index}")


# Open on purpose (validated by the API server at install time): Affinity objects and
# EnvVar.valueFrom. Everything else is closed or a typed map.
_OPEN_OBJECTS = re.compile(r"(/affinity|/items/properties/valueFrom)$")


def test_schema_closes_every_object() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    nodes = list(_object_nodes(schema))
    assert len(nodes) > 20
    for where, node in nodes:
        extra = node.get("additionalProperties")
        if _OPEN_OBJECTS.search(where):
            continue
        assert extra is False or isinstance(extra, dict), f"{where or '/'} accepts unknown keys"


def _default_paths(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        yield path
        if isinstance(value, dict):
            yield from _default_paths(value, path)


def test_templates_use_only_values_that_exist() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    known = set(_default_paths(values))
    used: set[str] = set()
    for template in (CHART / "templates").iterdir():
        used |= set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", template.read_text()))
    assert used, "no template reads .Values"
    unknown = sorted(path.rstrip(".") for path in used if path.rstrip(".") not in known)
    assert unknown == []


def test_every_value_is_used_by_a_template() -> None:
    templates = "".join(t.read_text() for t in (CHART / "templates").iterdir())
    values, docs = values_doc.load_values()
    leaves = [
        ".".join(path)
        for path, value in values_doc.documented_paths(values, docs)
        if not values_doc.is_group(value, docs[path])
    ]
    unused = [
        leaf for leaf in leaves if not re.search(rf"\.Values\.{re.escape(leaf)}(?![A-Za-z0-9_])", templates)
    ]
    assert unused == []


def test_chart_crd_copy_matches_generated_crds() -> None:
    generated = sorted((REPO / "crds").glob("*.yaml"))
    if not generated:
        pytest.skip("crds/ is empty in this checkout (python -m llmscale.api.generate writes it)")
    copies = sorted((CHART / "files" / "crds").glob("*.yaml"))
    assert [p.name for p in copies] == [p.name for p in generated]
    for source, copy in zip(generated, copies, strict=True):
        assert copy.read_bytes() == source.read_bytes(), f"{copy} is stale: run make generate"


def test_every_rbac_rule_says_why_it_exists() -> None:
    lines = (CHART / "templates" / "_rbac_rules.tpl").read_text().splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("- apiGroups:")]
    assert len(rules) >= 15
    for index in rules:
        above = index - 1
        while lines[above].lstrip().startswith("{{"):
            above -= 1  # template directives ({{- if ... }}) sit between a comment and its rule
        assert lines[above].startswith("#"), f"rule at line {index + 1} has no comment saying why"


def test_rbac_templates_never_grant_secrets_nodes_or_wildcards() -> None:
    text = (CHART / "templates" / "_rbac_rules.tpl").read_text()
    granted = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for forbidden in ('"secrets"', '"nodes"', '"*"', '"escalate"', '"bind"', '"impersonate"'):
        assert forbidden not in granted

"""Generate charts/llmscale/values.schema.json from values.yaml and its annotations.

    python3 charts/llmscale/hack/gen_schema.py           # rewrite values.schema.json
    python3 charts/llmscale/hack/gen_schema.py --check   # exit 1 when it is stale

The schema is strict: every object the chart defines has `additionalProperties: false`, so
`helm install --set operator.replica=2` (a typo) fails instead of being silently ignored.
Types come from the default values; `+schema` annotations add enums, bounds and patterns.
The few Kubernetes objects the chart passes through unchanged use the definitions below
(strict where the chart can be: resources, tolerations, env, image pull secrets); only
`affinity` is open, because its full schema is large and the API server validates it at
install time (the e2e tests run a server-side dry run of the rendered chart).

Draft-07 and no `$ref`: every Helm 3 release validates it the same way.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from values_doc import (
    CHART_DIR,
    KeyDoc,
    ValuesDocError,
    documented_paths,
    is_group,
    load_values,
    write_or_check,
)

SCHEMA_PATH = CHART_DIR / "values.schema.json"

_QUANTITY: dict[str, Any] = {
    "description": "A Kubernetes quantity such as 100m, 0.5, 256Mi or 2.",
    "anyOf": [
        {"type": "string", "pattern": r"^[+]?[0-9.]+([eE][+-]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"},
        {"type": "number", "minimum": 0},
    ],
}
_STRING_MAP: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}

# Kubernetes types referenced with `+schema-ref: NAME` in values.yaml.
DEFINITIONS: dict[str, dict[str, Any]] = {
    "resources": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "requests": {"type": "object", "additionalProperties": _QUANTITY},
            "limits": {"type": "object", "additionalProperties": _QUANTITY},
        },
    },
    "stringMap": _STRING_MAP,
    "tolerations": {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "key": {"type": "string"},
                "operator": {"type": "string", "enum": ["Exists", "Equal"]},
                "value": {"type": "string"},
                "effect": {"type": "string", "enum": ["", "NoSchedule", "PreferNoSchedule", "NoExecute"]},
                "tolerationSeconds": {"type": "integer"},
            },
        },
    },
    # Pass-through: validated by the API server (server-side dry run), see the module docstring.
    "affinity": {"type": "object"},
    "env": {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "value": {"type": "string"},
                "valueFrom": {"type": "object"},
            },
        },
    },
    "imagePullSecrets": {
        "type": "array",
        "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1}},
        },
    },
    "stringList": {"type": "array", "items": {"type": "string"}},
}

# Object nodes whose properties are deliberately open (asserted by tests/unit/chart).
OPEN_DEFINITIONS = frozenset({"affinity"})


def _infer(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, dict):
        return {"type": "object", "additionalProperties": False, "properties": {}}
    if isinstance(value, list):
        kinds = {type(item) for item in value}
        if len(kinds) != 1 or not value:
            # an empty or mixed list says nothing about its items: the annotation must
            return {"type": "array"}
        return {"type": "array", "items": _infer(value[0], where)}
    raise ValuesDocError(f"values.yaml: '{where}' has a null default; give it a typed default")


def _node_schema(path: tuple[str, ...], value: Any, doc: KeyDoc) -> dict[str, Any]:
    where = ".".join(path)
    if doc.schema_ref is not None:
        if doc.schema_ref not in DEFINITIONS:
            raise ValuesDocError(f"values.yaml: '{where}': unknown +schema-ref '{doc.schema_ref}'")
        node = copy.deepcopy(DEFINITIONS[doc.schema_ref])
    else:
        node = _infer(value, where)
    node.update(copy.deepcopy(doc.schema_patch))
    if node.get("type") == "array" and "items" not in node:
        raise ValuesDocError(f"values.yaml: '{where}' is a list; annotate its items with +schema")
    node["description"] = doc.description
    node["default"] = value
    # Keys first, in a fixed order, so the file diffs well.
    ordered: dict[str, Any] = {k: node[k] for k in ("description", "type") if k in node}
    ordered.update({k: v for k, v in node.items() if k not in ordered})
    return ordered


def build_schema() -> dict[str, Any]:
    """The JSON schema of the chart's values, as a dict."""
    values, docs = load_values()
    root: dict[str, Any] = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "llmscale Helm chart values",
        "type": "object",
        "additionalProperties": False,
        "properties": {},
    }
    nodes: dict[tuple[str, ...], dict[str, Any]] = {(): root}
    for path, value in documented_paths(values, docs):
        node = _node_schema(path, value, docs[path])
        if is_group(value, docs[path]):
            node.pop("default")  # the children carry their own defaults
        parent = nodes[path[:-1]]
        parent.setdefault("properties", {})[path[-1]] = node
        nodes[path] = node
    return root


def render() -> str:
    return json.dumps(build_schema(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    return write_or_check("gen_schema", SCHEMA_PATH, render, argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

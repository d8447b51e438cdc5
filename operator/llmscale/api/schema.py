"""Turn pydantic JSON Schema into a Kubernetes structural OpenAPI v3 schema.

Structural means: every node has a type, `$ref`/`$defs` are inlined, `anyOf [X, null]`
becomes X with `nullable: true`, no titles, opaque objects say
`x-kubernetes-preserve-unknown-fields` instead of `additionalProperties: true`, and draft-2020
numeric exclusive bounds become OpenAPI v3.0 boolean flags. Field examples are folded into the
description so that `kubectl explain` shows them.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from llmscale.api.base import CEL_RULES_KEY

JsonSchema = dict[str, Any]

# Keys a structural schema may carry (everything else pydantic emits is dropped).
_KEPT_KEYS = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "default",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "format",
        "nullable",
        "x-kubernetes-preserve-unknown-fields",
        CEL_RULES_KEY,
    }
)


def structural_schema(model: type[BaseModel]) -> JsonSchema:
    """The structural schema of a pydantic model (camelCase aliases, validation mode)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions: dict[str, JsonSchema] = raw.pop("$defs", {})
    return _convert(raw, definitions)


def _resolve(node: JsonSchema, definitions: dict[str, JsonSchema]) -> JsonSchema:
    """Inline `$ref` (and single-element allOf); sibling keys such as description win."""
    if "$ref" in node:
        target = definitions[node["$ref"].rsplit("/", 1)[-1]]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve({**target, **siblings}, definitions)
    if "allOf" in node and len(node["allOf"]) == 1:
        siblings = {k: v for k, v in node.items() if k != "allOf"}
        return _resolve({**node["allOf"][0], **siblings}, definitions)
    return node


def _convert(node: JsonSchema, definitions: dict[str, JsonSchema]) -> JsonSchema:
    node = _resolve(node, definitions)
    nullable = False
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"a structural schema cannot express anyOf {node['anyOf']!r}")
        nullable = len(variants) != len(node["anyOf"])
        siblings = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**_resolve(variants[0], definitions), **siblings}
    if "const" in node:
        node = {**node, "enum": [node["const"]]}

    out: JsonSchema = {}
    if "type" in node:
        out["type"] = node["type"]
    elif "enum" in node:
        out["type"] = _enum_type(node["enum"])
    elif "properties" in node or "additionalProperties" in node:
        out["type"] = "object"
    description = node.get("description", "")
    examples = node.get("examples")
    if examples:
        description = f"{description} Example: {_example_text(examples[0])}".strip()
    if description:
        out["description"] = description

    for key, value in node.items():
        if key in ("description", "type") or key not in _KEPT_KEYS:
            continue
        if key == "properties":
            out["properties"] = {name: _convert(child, definitions) for name, child in value.items()}
        elif key == "items":
            out["items"] = _convert(value, definitions)
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out["additionalProperties"] = _convert(value, definitions)
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "default":
            default = _structural_default(value)
            if default is not None:
                out["default"] = default
        else:
            out[key] = value

    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    _default_nested_objects(out)
    if nullable:
        out["nullable"] = True
    return out


def _default_nested_objects(node: JsonSchema) -> None:
    """Optional sub-objects that pydantic builds with a default factory get `default: {}`.

    The API server then fills their own defaults, so `kubectl get -o yaml` shows the values in
    force and CEL rules see them.
    """
    required = set(node.get("required", ()))
    for name, child in node.get("properties", {}).items():
        if (
            name not in required
            and child.get("type") == "object"
            and "properties" in child
            and "default" not in child
            and not child.get("nullable")
        ):
            child["default"] = {}


def _structural_default(value: Any) -> Any:
    if value is None or value == [] or value == {}:
        return None
    if isinstance(value, dict):
        return {}
    return value


def _enum_type(values: list[Any]) -> str:
    if all(isinstance(v, str) for v in values):
        return "string"
    if all(isinstance(v, bool) for v in values):
        return "boolean"
    if all(isinstance(v, int) for v in values):
        return "integer"
    return "number"


def _example_text(example: Any) -> str:
    if isinstance(example, str):
        return example if example else '""'
    return json.dumps(example, separators=(", ", ": "))


def strip_descriptions(node: Any) -> Any:
    """A copy without descriptions (for tests comparing shapes)."""
    if isinstance(node, dict):
        return {k: strip_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [strip_descriptions(v) for v in node]
    return node

"""Helpers for the API tests: evaluate the generated CRD's CEL rules like the API server."""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from llmscale.api.crd import open_api_schema


def schema_at(path: str) -> dict[str, Any]:
    """The structural schema node at a dotted path under the root, e.g. `spec.scaling`."""
    node = open_api_schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the API server does it (defaults of absent properties, recursively)."""
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    out = dict(value)
    for name, child in schema["properties"].items():
        if name not in out and "default" in child:
            out[name] = child["default"]
        if name in out:
            out[name] = apply_defaults(child, out[name])
    return out


_SCHEMAS: dict[str, dict[str, Any]] = {}


class CelRules:
    def __init__(self) -> None:
        self._env = celpy.Environment()
        self._programs: dict[str, Any] = {}

    def _program(self, expression: str) -> Any:
        if expression not in self._programs:
            self._programs[expression] = self._env.program(self._env.compile(expression))
        return self._programs[expression]

    def violations(self, path: str, value: dict[str, Any]) -> list[str]:
        """Messages (messageExpression evaluated) of the rules at `path` that `value` breaks."""
        schema = _SCHEMAS.setdefault(path, schema_at(path))
        activation = {"self": celpy.json_to_cel(apply_defaults(schema, value))}
        messages = []
        for rule in schema.get("x-kubernetes-validations", []):
            verdict = self._program(rule["rule"]).evaluate(activation)
            if isinstance(verdict, Exception) or not bool(verdict):
                message = self._program(rule["messageExpression"]).evaluate(activation)
                messages.append(str(message))
        return messages


@pytest.fixture(scope="session")
def cel() -> CelRules:
    return CelRules()

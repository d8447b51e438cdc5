"""Read charts/llmscale/values.yaml together with the comments that document each key.

values.yaml is the single source of truth for the chart's values: the comment block directly
above a key is its documentation, and lines in that block that start with `+` are annotations
for the generators rather than prose:

    # Number of operator pods (see docs/install.md on peering).
    # +schema: {"minimum": 1}
    replicas: 1

- `+schema: <JSON object>` is merged over the schema inferred from the default value
  (the annotation wins key by key), e.g. enums, minimums, patterns, item schemas.
- `+schema-ref: <name>` replaces the inferred schema with a named Kubernetes type from
  gen_schema.DEFINITIONS (resources, tolerations, ...). The keys below such a value are
  Kubernetes fields, documented by Kubernetes, so they need no comment of their own.

Block lists in values.yaml hold scalars or Kubernetes objects only; keys inside list items are
never chart values and are skipped. This module has no dependency beyond PyYAML, so the
generators run from a bare checkout (`python3 charts/llmscale/hack/gen_schema.py`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CHART_DIR = Path(__file__).resolve().parents[1]
VALUES_PATH = CHART_DIR / "values.yaml"

_KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-/]+):(?:\s|$)")


class ValuesDocError(ValueError):
    """values.yaml breaks a documentation rule; the message names the key and line."""


@dataclass
class KeyDoc:
    """Documentation of one key of values.yaml."""

    path: tuple[str, ...]
    line: int
    description: str
    schema_patch: dict[str, Any] = field(default_factory=dict)
    schema_ref: str | None = None


def _parse_annotation(text: str, doc: KeyDoc, line_no: int) -> None:
    name, _, payload = text[1:].partition(":")
    payload = payload.strip()
    if name == "schema":
        try:
            patch = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise ValuesDocError(f"values.yaml line {line_no}: +schema is not valid JSON: {exc}") from exc
        if not isinstance(patch, dict):
            raise ValuesDocError(f"values.yaml line {line_no}: +schema must be a JSON object")
        doc.schema_patch.update(patch)
    elif name == "schema-ref":
        doc.schema_ref = payload
    else:
        raise ValuesDocError(f"values.yaml line {line_no}: unknown annotation '+{name}'")


def read_key_docs(text: str) -> dict[tuple[str, ...], KeyDoc]:
    """Map each mapping key path of values.yaml to the comment block right above it."""
    docs: dict[tuple[str, ...], KeyDoc] = {}
    stack: list[str] = []
    pending: list[tuple[int, str]] = []
    list_indent: int | None = None
    for line_no, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip(" "))
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append((line_no, stripped[1:].strip()))
            continue
        if list_indent is not None and (indent > list_indent or stripped.startswith("-")):
            pending = []
            continue
        list_indent = None
        if stripped.startswith("-"):
            list_indent = indent
            pending = []
            continue
        match = _KEY_LINE.match(raw)
        if match is None:
            pending = []  # continuation of a multi-line scalar
            continue
        if indent % 2:
            raise ValuesDocError(f"values.yaml line {line_no}: indent by 2 spaces")
        depth = indent // 2
        del stack[depth:]
        stack.append(match.group("key"))
        doc = KeyDoc(path=tuple(stack), line=line_no, description="")
        prose: list[str] = []
        for comment_line, comment in pending:
            if comment.startswith("+"):
                _parse_annotation(comment, doc, comment_line)
            else:
                prose.append(comment)
        doc.description = " ".join(p for p in prose if p).strip()
        docs[doc.path] = doc
        pending = []
    return docs


def load_values(path: Path = VALUES_PATH) -> tuple[dict[str, Any], dict[tuple[str, ...], KeyDoc]]:
    """The values (as Helm sees them) and the documentation of every key."""
    text = path.read_text()
    values = yaml.safe_load(text)
    if not isinstance(values, dict):
        raise ValuesDocError(f"{path}: the top level must be a mapping")
    return values, read_key_docs(text)


def is_group(value: Any, doc: KeyDoc) -> bool:
    """A mapping of chart values (documented key by key), not a map-typed value of its own."""
    return (
        isinstance(value, dict)
        and doc.schema_ref is None
        and doc.schema_patch.get("additionalProperties", False) is False
    )


def documented_paths(
    values: dict[str, Any], docs: dict[tuple[str, ...], KeyDoc]
) -> list[tuple[tuple[str, ...], Any]]:
    """Every chart value path (depth first, in file order) with its default; checks the docs.

    Raises ValuesDocError when a value has no description or a comment documents no value.
    """
    found: list[tuple[tuple[str, ...], Any]] = []

    def walk(node: dict[str, Any], prefix: tuple[str, ...]) -> None:
        for key, value in node.items():
            path = (*prefix, str(key))
            doc = docs.get(path)
            if doc is None or not doc.description:
                raise ValuesDocError(f"values.yaml: '{'.'.join(path)}' has no description comment")
            found.append((path, value))
            if is_group(value, doc):
                walk(value, path)

    walk(values, ())
    known = {path for path, _ in found}
    for path, doc in docs.items():
        under_leaf = any(path[:n] in known and not is_group({}, docs[path[:n]]) for n in range(1, len(path)))
        if path not in known and not under_leaf:
            raise ValuesDocError(f"values.yaml line {doc.line}: '{'.'.join(path)}' is not a value")
    return found


def write_or_check(tool: str, path: Path, render: Callable[[], str], argv: list[str]) -> int:
    """The generators' main: write `render()` to `path`, or with --check fail (1) when stale."""
    try:
        text = render()
    except ValuesDocError as exc:
        print(f"{tool}: {exc}", file=sys.stderr)
        return 2
    if "--check" in argv:
        if not path.exists() or path.read_text() != text:
            print(f"{tool}: {path} is stale; run {tool}.py", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    return 0

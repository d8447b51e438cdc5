"""Shared pydantic base and the helper that attaches CEL rules to a model's schema."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

CEL_RULES_KEY: Final = "x-kubernetes-validations"


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are an error."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON form as the API server stores it (camelCase, unset optionals left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel_rule(
    rule: str, message_expression: str, *, field_path: str | None = None, message: str | None = None
) -> dict[str, str]:
    """One `x-kubernetes-validations` entry.

    `messageExpression` names the field and the offending value; `message` is the static
    fallback the API server uses when the expression cannot be evaluated.
    """
    entry = {"rule": rule, "messageExpression": message_expression, "reason": "FieldValueInvalid"}
    if message is not None:
        entry["message"] = message
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry


_DIGITS: Final = "[" + ", ".join(f"'{d}'" for d in range(10)) + "]"


def cel_int(expression: str) -> str:
    """A CEL string expression rendering the non-negative int `expression` (0..9999).

    `string(int)` would be simpler, but the API server's cost estimator cannot bound its size,
    so any messageExpression using it is rejected as over budget; indexing a digit list is bounded.
    """
    x = f"({expression})"
    return (
        f"(({x} >= 1000 ? {_DIGITS}[{x} / 1000 % 10] : '')"
        f" + ({x} >= 100 ? {_DIGITS}[{x} / 100 % 10] : '')"
        f" + ({x} >= 10 ? {_DIGITS}[{x} / 10 % 10] : '')"
        f" + {_DIGITS}[{x} % 10])"
    )


def cel_text(*parts: str | tuple[str]) -> str:
    """A CEL string concatenation: plain str parts are literal text, 1-tuples are int expressions.

    `cel_text("spec.x: ", ("self.x",), " is too big")` -> `'spec.x: ' + <digits of self.x> + ' is too big'`.
    """
    pieces = []
    for part in parts:
        if isinstance(part, tuple):
            pieces.append(cel_int(part[0]))
        else:
            pieces.append("'" + part.replace("'", "\\'") + "'")
    return " + ".join(pieces)


def cel_rules(*rules: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` value carrying CEL rules."""
    return {CEL_RULES_KEY: list(rules)}

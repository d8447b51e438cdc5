"""Sampling and tool parameters: checked the way vLLM checks them, so bad values get vLLM's 400.

The emulator does not sample (its tokens are fixed), but a "vLLM-compatible" server must refuse
what vLLM refuses: a client tested against the emulator would otherwise meet its first 400 in
production. Ranges follow vLLM's SamplingParams checks and its OpenAI request models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from llmscale_tools.emulator.errors import RequestError

# vLLM's --max-logprobs default: the most alternatives a request may ask for per token.
MAX_LOGPROBS = 20
AUTO_TOOL_CHOICE_MESSAGE = (
    '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set'
)


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestError(f"{name}: expected a number, got {value!r}", param=name)
    return float(value)


def _check_range(
    body: dict[str, Any], name: str, low: float | None, high: float | None, *, low_open: bool = False
) -> None:
    value = _number(body, name)
    if value is None:
        return
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        lower = f"{'(' if low_open else '['}{low if low is not None else '-inf'}"
        bounds = f"{lower}, {high if high is not None else 'inf'}]"
        raise RequestError(f"{name}: value {value:g} must be in {bounds}", param=name)


def check_sampling(body: dict[str, Any]) -> None:
    """400 for the values vLLM refuses (temperature -1, top_p 5, top_k -2, ...)."""
    _check_range(body, "temperature", 0.0, None)
    _check_range(body, "top_p", 0.0, 1.0, low_open=True)
    _check_range(body, "min_p", 0.0, 1.0)
    _check_range(body, "presence_penalty", -2.0, 2.0)
    _check_range(body, "frequency_penalty", -2.0, 2.0)
    _check_range(body, "repetition_penalty", 0.0, None, low_open=True)
    top_k = body.get("top_k")
    if top_k is not None:
        if isinstance(top_k, bool) or not isinstance(top_k, int):
            raise RequestError(f"top_k: expected an integer, got {top_k!r}", param="top_k")
        if top_k < -1:
            raise RequestError(f"top_k: value {top_k} must be -1 or 0 (off) or at least 1", param="top_k")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise RequestError(f"seed: expected an integer, got {seed!r}", param="seed")


def parse_stop(body: dict[str, Any]) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError(f"stop: expected a string or a list of strings, got {stop!r}", param="stop")
    return tuple(s for s in stop if s)


@dataclass(frozen=True)
class LogprobsRequest:
    """How many alternatives per token (0: only the sampled token's own log-probability)."""

    top: int


def parse_logprobs(body: dict[str, Any], chat: bool) -> LogprobsRequest | None:
    if not chat:
        value = body.get("logprobs")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RequestError(f"logprobs: expected an integer >= 0, got {value!r}", param="logprobs")
        top = value
    else:
        wanted = body.get("logprobs")
        if wanted is not None and not isinstance(wanted, bool):
            raise RequestError(f"logprobs: expected true or false, got {wanted!r}", param="logprobs")
        top_value = body.get("top_logprobs")
        if top_value is not None and (
            isinstance(top_value, bool) or not isinstance(top_value, int) or top_value < 0
        ):
            raise RequestError(
                f"top_logprobs: expected an integer >= 0, got {top_value!r}", param="top_logprobs"
            )
        if top_value and not wanted:
            raise RequestError("top_logprobs: needs logprobs set to true", param="top_logprobs")
        if not wanted:
            return None
        top = top_value or 0
    if top > MAX_LOGPROBS:
        raise RequestError(
            f"logprobs: requested {top} alternatives per token, more than the maximum {MAX_LOGPROBS}",
            param="top_logprobs" if chat else "logprobs",
        )
    return LogprobsRequest(top)


def check_tools(body: dict[str, Any]) -> None:
    """vLLM started without a tool parser (the operator never adds one) serves no tool calls:
    "auto" (the default once tools are given), "required" and named choices are refused;
    `tool_choice: "none"` is accepted and the tools are ignored."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if tools is None:
        if choice not in (None, "none"):
            raise RequestError("tool_choice: needs tools", param="tool_choice")
        return
    if not isinstance(tools, list) or not all(
        isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("function"), dict)
        for t in tools
    ):
        raise RequestError(
            "tools: expected a list of {type: function, function: {...}} objects", param="tools"
        )
    if choice == "none":
        return
    if choice in (None, "auto"):
        raise RequestError(AUTO_TOOL_CHOICE_MESSAGE, param="tool_choice")
    raise RequestError(
        f"tool_choice: {choice!r} is not emulated (the emulator generates no tool calls)", param="tool_choice"
    )

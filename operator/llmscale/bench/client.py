"""One streaming request against an OpenAI-compatible server, timed chunk by chunk.

TTFT is the time from sending the request to the first chunk that carries text (chat streams
open with an empty role delta, which does not count); every later text chunk adds one
inter-token gap. "Sending" is the moment the request's headers are on the wire (aiohttp's
`on_request_headers_sent`, through `timing_trace()` on the session), as guidellm times it (the
httpx trace event `send_request_headers.started`): what happens in the client before that (the
event loop's turn, the connection pool, encoding the body) is not the server's latency, and at
16 streams on one event loop it was a few milliseconds of our TTFT that guidellm did not count.
End-to-end latency starts at the same moment. A session without the trace falls back to the
call time. Output tokens are taken from the usage the server reports
(`stream_options.include_usage`), else the number of text chunks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from llmscale.bench.stats import RequestResult

Api = Literal["completions", "chat"]
# Words that BPE vocabularies (Llama, Mistral, GPT, and the tiny test model's) encode as one
# token each after a space, so a real vLLM sees the requested prompt length give or take the
# first word and BOS; the emulator takes the exact figure from the llmscale_prompt_tokens
# extension field.
_PROMPT_WORDS = ("the", "of", "to", "and", "is", "for", "on", "with")


def prompt_text(tokens: int, prompt_id: int = 0) -> str:
    """`tokens` words. The first ones spell `prompt_id` in base 8 over the same eight words, least
    significant digit first, then the words repeat in order: prompts with different ids differ
    from their first words on, with the same mix of words. A server's prefix cache (vLLM's is on
    by default, and its block hashes chain from the first token) then cannot serve one request's
    prompt from another's: with one fixed prompt, real vLLM answered 48,128 of 75,392 prompt
    tokens from its cache and the TTFT measured a cached prefill (about a third of guidellm's,
    whose synthetic prompts are all different)."""
    words: list[str] = []
    value = max(0, prompt_id)
    while True:
        value, digit = divmod(value, len(_PROMPT_WORDS))
        words.append(_PROMPT_WORDS[digit])
        if value == 0:
            break
    words += [_PROMPT_WORDS[i % len(_PROMPT_WORDS)] for i in range(len(words), tokens)]
    return " ".join(words[:tokens])


def prompt_ids() -> Iterator[int]:
    """Distinct prompt ids for one run: consecutive from a random 40-bit start, so two runs
    against the same server (each level of a sweep, each tool of a comparison) share none."""
    return itertools.count(random.SystemRandom().getrandbits(40))


@dataclass(frozen=True)
class Target:
    url: str  # base URL, e.g. http://127.0.0.1:8000
    model: str
    api: Api = "completions"

    @property
    def endpoint(self) -> str:
        path = "/v1/completions" if self.api == "completions" else "/v1/chat/completions"
        return self.url.rstrip("/") + path


def request_body(
    target: Target, prompt_tokens: int, output_tokens: int, prompt_id: int = 0
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": target.model,
        "max_tokens": output_tokens,
        # vLLM extensions: generate exactly max_tokens, as benchmark_serving does
        "min_tokens": output_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
        "llmscale_prompt_tokens": prompt_tokens,
    }
    text = prompt_text(prompt_tokens, prompt_id)
    if target.api == "completions":
        body["prompt"] = text
    else:
        body["messages"] = [{"role": "user", "content": text}]
    return body


def _error_message(payload: str) -> str:
    try:
        parsed = json.loads(payload)
    except json.JSONDecodeError:
        return payload.strip()[:200]
    if isinstance(parsed, dict):
        error = parsed.get("error", parsed)
        if isinstance(error, dict):
            return str(error.get("message", error))[:200]
        return str(error)[:200]
    return str(parsed)[:200]


class _SendTime:
    """Per-request holder the trace fills in (aiohttp's `trace_request_ctx`)."""

    __slots__ = ("at",)

    def __init__(self) -> None:
        self.at: float | None = None


async def _on_headers_sent(_session: aiohttp.ClientSession, context: Any, _params: Any) -> None:
    sent = context.trace_request_ctx
    if isinstance(sent, _SendTime) and sent.at is None:
        sent.at = time.monotonic()


def timing_trace() -> aiohttp.TraceConfig:
    """The trace that stamps each request's send time (see the module docstring)."""
    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(_on_headers_sent)
    return config


def _chunk_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    if "text" in choice:
        return str(choice.get("text") or "")
    delta = choice.get("delta") or {}
    return str(delta.get("content") or "")


async def send_request(
    session: aiohttp.ClientSession,
    target: Target,
    prompt_tokens: int,
    output_tokens: int,
    timeout_seconds: float,
    prompt_id: int = 0,
) -> RequestResult:
    """Never raises for server or network trouble: the result carries the error kind. Give
    every request of a run its own `prompt_id` (`prompt_ids()`) unless a shared prompt is meant."""
    body = request_body(target, prompt_tokens, output_tokens, prompt_id)
    start = time.monotonic()
    sent = _SendTime()
    result = RequestResult(start_seconds=start, end_seconds=start, ok=False, prompt_tokens=prompt_tokens)
    chunk_times: list[float] = []
    usage_tokens: int | None = None
    try:
        async with asyncio.timeout(timeout_seconds):
            async with session.post(target.endpoint, json=body, trace_request_ctx=sent) as response:
                if response.status != 200:
                    result.error = f"HTTP {response.status}"
                    result.error_detail = _error_message(await response.text())
                    return result
                async for raw in response.content:
                    line = raw.strip()
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        result.error = "stream error"
                        result.error_detail = _error_message(data.decode())
                        return result
                    if _chunk_text(chunk):
                        chunk_times.append(time.monotonic())
                    usage = chunk.get("usage")
                    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
                        usage_tokens = usage["completion_tokens"]
    except TimeoutError:
        result.error = "timeout"
        result.error_detail = f"no complete response within {timeout_seconds:g} s"
        return result
    except aiohttp.ClientConnectorError as exc:
        result.error = "connection"
        result.error_detail = exc.os_error.strerror or str(exc) if exc.os_error else str(exc)
        return result
    except (aiohttp.ClientError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        result.error = "stream interrupted" if chunk_times else "protocol"
        result.error_detail = f"{type(exc).__name__}: {exc}"[:200]
        return result
    finally:
        result.end_seconds = time.monotonic()
        if sent.at is not None:
            result.start_seconds = sent.at
    if not chunk_times:
        result.error = "empty response"
        result.error_detail = "the stream ended without any text"
        return result
    result.ok = True
    result.ttft_seconds = chunk_times[0] - result.start_seconds
    result.itl_seconds = [b - a for a, b in itertools.pairwise(chunk_times)]
    result.output_tokens = usage_tokens if usage_tokens is not None else len(chunk_times)
    return result


async def fetch_models(session: aiohttp.ClientSession, url: str, timeout_seconds: float) -> list[str]:
    """The served model names (GET /v1/models); raises aiohttp/asyncio errors for the caller."""
    async with asyncio.timeout(timeout_seconds):
        async with session.get(url.rstrip("/") + "/v1/models") as response:
            if response.status != 200:
                raise aiohttp.ClientResponseError(
                    response.request_info,
                    (),
                    status=response.status,
                    message=_error_message(await response.text()),
                )
            payload = await response.json(content_type=None)
    return [str(item.get("id")) for item in payload.get("data", []) if isinstance(item, dict)]

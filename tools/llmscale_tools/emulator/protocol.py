"""OpenAI-compatible request parsing and response shapes, as vLLM's server produces them.

Token counts: the emulator has no tokenizer. The prompt length is, in order of preference:
the extension field `llmscale_prompt_tokens` (top level or inside `extra_body`), the length
of a token-id prompt, or the text length / 4 (about four characters per token for English
BPE vocabularies), at least 1. Every request generates exactly `max_tokens` tokens (as with
`ignore_eos: true`), so benchmarks and trace replays control output lengths exactly.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from llmscale_tools.emulator.config import DEFAULT_CHAT_MAX_TOKENS, DEFAULT_COMPLETION_MAX_TOKENS

Endpoint = Literal["completions", "chat"]
CHARS_PER_TOKEN = 4
PROMPT_TOKENS_FIELD = "llmscale_prompt_tokens"
# the text of each emulated token; a leading space so concatenated output reads as words
TOKEN_TEXT = " tok"


class RequestError(Exception):
    """A request the server refuses; becomes vLLM's error JSON with this status."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param

    @property
    def error_type(self) -> str:
        return {400: "BadRequestError", 404: "NotFoundError", 503: "ServiceUnavailableError"}.get(
            self.status, "InternalServerError"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.status,
            }
        }


@dataclass(frozen=True)
class ParsedRequest:
    endpoint: Endpoint
    model: str
    prompt_tokens: int
    max_tokens: int
    stream: bool
    include_usage: bool


def _int_field(body: dict[str, Any], name: str, *, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{name}: expected an integer, got {value!r}", param=name)
    if value < minimum:
        raise RequestError(f"{name}: value {value} must be >= {minimum}", param=name)
    return value


def _bool_field(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"{name}: expected true or false, got {value!r}", param=name)
    return value


def _tokens_of_text(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


def _prompt_tokens_of_completion(prompt: Any) -> int:
    if isinstance(prompt, str):
        return _tokens_of_text(prompt)
    if (
        isinstance(prompt, list)
        and prompt
        and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt)
    ):
        return len(prompt)
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        return _tokens_of_text(prompt[0])
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], list):
        return _prompt_tokens_of_completion(prompt[0])
    raise RequestError(
        "prompt: expected a string, a list of token ids, or a one-element list of either "
        "(batched prompts are not emulated)",
        param="prompt",
    )


def _prompt_tokens_of_chat(messages: Any) -> int:
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: expected a non-empty list of {role, content} objects", param="messages")
    chars = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise RequestError(f"messages[{index}]: expected an object with a role", param="messages")
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):  # content parts: count the text ones
            chars += sum(len(str(part.get("text", ""))) for part in content if isinstance(part, dict))
        elif content is not None:
            raise RequestError(
                f"messages[{index}].content: expected a string or a list of parts", param="messages"
            )
    # the chat template adds a few tokens per message (role headers)
    return _tokens_of_text("x" * chars) + 4 * len(messages)


def parse_request(
    body: Any, endpoint: Endpoint, *, accepted_models: tuple[str, ...], max_model_len: int
) -> ParsedRequest:
    """Validate a JSON body; raise RequestError (400 naming the field, 404 for an unknown model)."""
    if not isinstance(body, dict):
        raise RequestError("request body: expected a JSON object")
    model = body.get("model")
    if model is None:
        model = accepted_models[0]
    elif not isinstance(model, str):
        raise RequestError(f"model: expected a string, got {model!r}", param="model")
    elif model not in accepted_models:
        raise RequestError(f"The model `{model}` does not exist.", status=404, param="model")

    extra = body.get("extra_body")
    if extra is not None and not isinstance(extra, dict):
        raise RequestError("extra_body: expected an object", param="extra_body")
    hinted = _int_field(body, PROMPT_TOKENS_FIELD, minimum=1)
    if hinted is None and extra:
        hinted = _int_field(extra, PROMPT_TOKENS_FIELD, minimum=1)

    if endpoint == "completions":
        if "prompt" not in body:
            raise RequestError("prompt: required", param="prompt")
        measured = _prompt_tokens_of_completion(body["prompt"])
        max_tokens = _int_field(body, "max_tokens", minimum=1)
        default_max = DEFAULT_COMPLETION_MAX_TOKENS
    else:
        measured = _prompt_tokens_of_chat(body.get("messages"))
        max_tokens = _int_field(body, "max_completion_tokens", minimum=1)
        if max_tokens is None:
            max_tokens = _int_field(body, "max_tokens", minimum=1)
        default_max = DEFAULT_CHAT_MAX_TOKENS
    prompt_tokens = hinted if hinted is not None else measured

    n = _int_field(body, "n", minimum=1)
    if n is not None and n != 1:
        raise RequestError(f"n: value {n} is not emulated; only n=1", param="n")
    min_tokens = _int_field(body, "min_tokens", minimum=0)
    _bool_field(body, "ignore_eos")  # accepted for compatibility: the emulator never stops early
    stream = _bool_field(body, "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise RequestError("stream_options: expected an object", param="stream_options")
        if not stream:
            raise RequestError("stream_options: only allowed when stream is true", param="stream_options")
        include_usage = _bool_field(options, "include_usage")

    if prompt_tokens >= max_model_len:
        raise RequestError(
            f"This model's maximum context length is {max_model_len} tokens. However, your request has "
            f"{prompt_tokens} input tokens. Please reduce the length of the input messages.",
            param="prompt" if endpoint == "completions" else "messages",
        )
    if max_tokens is None:
        max_tokens = min(default_max, max_model_len - prompt_tokens)
    if min_tokens is not None and min_tokens > max_tokens:
        raise RequestError(
            f"min_tokens: value {min_tokens} must be <= max_tokens {max_tokens}", param="min_tokens"
        )
    if prompt_tokens + max_tokens > max_model_len:
        raise RequestError(
            f"This model's maximum context length is {max_model_len} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
            "completion). Please reduce the length of the messages or completion.",
            param="max_tokens",
        )
    return ParsedRequest(endpoint, model, prompt_tokens, max_tokens, stream, include_usage)


class ResponseShaper:
    """Builds the JSON objects of one response (chunks share id, created and model)."""

    def __init__(self, request: ParsedRequest) -> None:
        self.request = request
        prefix = "cmpl" if request.endpoint == "completions" else "chatcmpl"
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.object_chunk = (
            "text_completion" if request.endpoint == "completions" else "chat.completion.chunk"
        )

    def _envelope(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.request.model}

    def usage(self, completion_tokens: int) -> dict[str, int]:
        prompt = self.request.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion_tokens,
            "completion_tokens": completion_tokens,
        }

    def role_chunk(self) -> dict[str, Any]:
        """Chat streams open with an empty assistant delta, before any token (as vLLM does)."""
        chunk = self._envelope(self.object_chunk)
        chunk["choices"] = [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ]
        return chunk

    def token_chunk(self, tokens: int, finish_reason: str | None) -> dict[str, Any]:
        chunk = self._envelope(self.object_chunk)
        text = TOKEN_TEXT * tokens
        if self.request.endpoint == "completions":
            choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None}
        else:
            choice = {"index": 0, "delta": {"content": text}, "logprobs": None}
        choice["finish_reason"] = finish_reason
        choice["stop_reason"] = None
        chunk["choices"] = [choice]
        return chunk

    def usage_chunk(self, completion_tokens: int) -> dict[str, Any]:
        chunk = self._envelope(self.object_chunk)
        chunk["choices"] = []
        chunk["usage"] = self.usage(completion_tokens)
        return chunk

    def full_response(self, completion_tokens: int, finish_reason: str) -> dict[str, Any]:
        text = TOKEN_TEXT * completion_tokens
        if self.request.endpoint == "completions":
            body = self._envelope("text_completion")
            choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None}
        else:
            body = self._envelope("chat.completion")
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None}
        choice["finish_reason"] = finish_reason
        choice["stop_reason"] = None
        body["choices"] = [choice]
        body["usage"] = self.usage(completion_tokens)
        return body

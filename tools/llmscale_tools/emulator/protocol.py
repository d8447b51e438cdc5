"""OpenAI-compatible request parsing and response shapes, as vLLM's server produces them.

Token counts: the emulator has no tokenizer. The prompt length is, in order of preference:
the extension field `llmscale_prompt_tokens` (top level or inside `extra_body`), the length
of a token-id prompt, or the text length / 4 (about four characters per token for English
BPE vocabularies), at least 1.

Output: every emulated token reads " tok". A request with `max_tokens` (or
`max_completion_tokens`) generates exactly that many (as with `ignore_eos: true`), so
benchmarks and trace replays control output lengths exactly, and finishes with `length`; a
request without one stands for an answer the model ends itself: the default length, finishing
with `stop`. A `stop` string found in the output ends it there (finish `stop`, `stop_reason`
the string), and the engine generates only the tokens up to it.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from llmscale_tools.emulator import sampling
from llmscale_tools.emulator.config import DEFAULT_CHAT_MAX_TOKENS, DEFAULT_COMPLETION_MAX_TOKENS
from llmscale_tools.emulator.errors import RequestError

Endpoint = Literal["completions", "chat"]
CHARS_PER_TOKEN = 4
PROMPT_TOKENS_FIELD = "llmscale_prompt_tokens"
# the text of each emulated token; a leading space so concatenated output reads as words
TOKEN_TEXT = " tok"


@dataclass(frozen=True)
class ParsedRequest:
    endpoint: Endpoint
    model: str
    prompt_tokens: int
    max_tokens: int  # tokens the engine generates per choice (stop strings already applied)
    stream: bool
    include_usage: bool
    n: int = 1
    finish_reason: str = "length"
    stop_reason: str | None = None
    text_limit: int | None = None  # characters of output text before a stop string
    echo_text: str = ""
    logprobs: sampling.LogprobsRequest | None = None
    stop: tuple[str, ...] = field(default=(), repr=False)


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


def _echo_of_completion(prompt: Any) -> str:
    """The prompt as text (a token-id prompt reads as emulated tokens)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and len(prompt) == 1:
        return _echo_of_completion(prompt[0])
    return TOKEN_TEXT * len(prompt) if isinstance(prompt, list) else ""


def _prompt_tokens_of_chat(messages: Any) -> int:
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: expected a non-empty list of {role, content} objects", param="messages")
    chars = 0
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise RequestError(f"messages[{index}]: expected an object with a role", param="messages")
        chars += len(_content_text(message.get("content"), index))
    # the chat template adds a few tokens per message (role headers)
    return _tokens_of_text("x" * chars) + 4 * len(messages)


def _content_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    if content is None:
        return ""
    raise RequestError(f"messages[{index}].content: expected a string or a list of parts", param="messages")


def _echo_of_chat(messages: list[Any]) -> str:
    """vLLM's chat echo: the last message's content when it is the assistant's own."""
    last = messages[-1]
    return _content_text(last.get("content"), len(messages) - 1) if last.get("role") == "assistant" else ""


def output_text(tokens: int) -> str:
    return TOKEN_TEXT * tokens


def _apply_stop(stop: tuple[str, ...], tokens: int) -> tuple[int, int, str] | None:
    """(tokens generated, characters kept, the stop string) when a stop string ends the output."""
    text = output_text(tokens)
    hits = [(text.find(s) + len(s), text.find(s), s) for s in stop if s in text]
    if not hits:
        return None
    end, start, string = min(hits)
    return math.ceil(end / len(TOKEN_TEXT)), start, string


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

    echo = _bool_field(body, "echo")
    if endpoint == "completions":
        if "prompt" not in body:
            raise RequestError("prompt: required", param="prompt")
        measured = _prompt_tokens_of_completion(body["prompt"])
        max_tokens = _int_field(body, "max_tokens", minimum=1)
        default_max = DEFAULT_COMPLETION_MAX_TOKENS
        echo_text = _echo_of_completion(body["prompt"]) if echo else ""
    else:
        measured = _prompt_tokens_of_chat(body.get("messages"))
        max_tokens = _int_field(body, "max_completion_tokens", minimum=1)
        if max_tokens is None:
            max_tokens = _int_field(body, "max_tokens", minimum=1)
        default_max = DEFAULT_CHAT_MAX_TOKENS
        echo_text = _echo_of_chat(body["messages"]) if echo else ""
        sampling.check_tools(body)
    prompt_tokens = hinted if hinted is not None else measured
    sampling.check_sampling(body)
    stop = sampling.parse_stop(body)
    logprobs = sampling.parse_logprobs(body, chat=endpoint == "chat")

    n = _int_field(body, "n", minimum=1) or 1
    if n > 1 and body.get("temperature") == 0:
        # vLLM: n identical greedy samples are refused, not served
        raise RequestError(f"n must be 1 when using greedy sampling, got {n}.", param="n")
    min_tokens = _int_field(body, "min_tokens", minimum=0)
    ignore_eos = _bool_field(body, "ignore_eos")
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
            f"This model's maximum context length is {max_model_len} tokens. However, your prompt "
            f"contains at least {prompt_tokens} input tokens, which exceeds this limit even without any "
            "output tokens. Please reduce the length of the input prompt.",
            param="input_tokens",  # vLLM 0.32 names the count, not the field
        )
    # no limit: the model ends its answer itself (EOS) at the default length, unless the
    # context ends first or the client asked to ignore EOS
    finish_reason = "length" if max_tokens is not None or ignore_eos else "stop"
    if max_tokens is None:
        max_tokens = default_max
        if max_tokens >= max_model_len - prompt_tokens:
            max_tokens, finish_reason = max_model_len - prompt_tokens, "length"
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
    stop_reason: str | None = None
    text_limit: int | None = None
    stopped = _apply_stop(stop, max_tokens)
    if stopped is not None and stopped[0] >= (min_tokens or 0):
        max_tokens, text_limit, stop_reason = stopped
        finish_reason = "stop"
    return ParsedRequest(
        endpoint,
        model,
        prompt_tokens,
        max_tokens,
        stream,
        include_usage,
        n=n,
        finish_reason=finish_reason,
        stop_reason=stop_reason,
        text_limit=text_limit,
        echo_text=echo_text,
        logprobs=logprobs,
        stop=stop,
    )


# vLLM writes a log-probability of -inf as this number (JSON has no infinity)
NEGATIVE_INFINITY_LOGPROB = -9999.0
# stand-in alternatives for top_logprobs: the emulator has no distribution to rank
_ALTERNATIVES = tuple(f" alt{i}" for i in range(sampling.MAX_LOGPROBS))


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

    def text(self, first_token: int, last_token: int) -> str:
        """The output text of tokens [first_token, last_token), cut at a stop string."""
        limit = self.request.text_limit
        start = first_token * len(TOKEN_TEXT)
        end = last_token * len(TOKEN_TEXT)
        if limit is not None:
            start, end = min(start, limit), min(end, limit)
        return output_text(last_token)[start:end]

    def usage(self, completion_tokens: int) -> dict[str, int]:
        prompt = self.request.prompt_tokens
        return {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion_tokens,
            "completion_tokens": completion_tokens,
        }

    def _logprobs(self, first_token: int, last_token: int, text_offset: int) -> dict[str, Any] | None:
        wanted = self.request.logprobs
        if wanted is None:
            return None
        count = last_token - first_token
        alternatives = [TOKEN_TEXT, *_ALTERNATIVES][: wanted.top]
        if self.request.endpoint == "completions":
            top = {alt: (0.0 if alt == TOKEN_TEXT else NEGATIVE_INFINITY_LOGPROB) for alt in alternatives}
            return {
                "text_offset": [text_offset + i * len(TOKEN_TEXT) for i in range(count)],
                "token_logprobs": [0.0] * count,
                "tokens": [TOKEN_TEXT] * count,
                "top_logprobs": [dict(top) for _ in range(count)] if wanted.top else None,
            }

        def entry(token: str, logprob: float) -> dict[str, Any]:
            return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

        content = []
        for _ in range(count):
            item = entry(TOKEN_TEXT, 0.0)
            item["top_logprobs"] = [
                entry(alt, 0.0 if alt == TOKEN_TEXT else NEGATIVE_INFINITY_LOGPROB) for alt in alternatives
            ]
            content.append(item)
        return {"content": content}

    def role_chunk(self, index: int = 0) -> dict[str, Any]:
        """Chat streams open with an empty assistant delta, before any token (as vLLM does)."""
        chunk = self._envelope(self.object_chunk)
        chunk["choices"] = [
            {
                "index": index,
                "delta": {"role": "assistant", "content": ""},
                "logprobs": None,
                "finish_reason": None,
            }
        ]
        return chunk

    def token_chunk(self, first_token: int, last_token: int, final: bool, index: int = 0) -> dict[str, Any]:
        """The chunk carrying tokens [first_token, last_token) of choice `index`."""
        chunk = self._envelope(self.object_chunk)
        text = self.text(first_token, last_token)
        offset = len(self.request.echo_text) + len(self.text(0, first_token))
        if first_token == 0 and self.request.echo_text:
            text = self.request.echo_text + text
        logprobs = self._logprobs(first_token, last_token, offset)
        if self.request.endpoint == "completions":
            choice: dict[str, Any] = {"index": index, "text": text, "logprobs": logprobs}
        else:
            choice = {"index": index, "delta": {"content": text}, "logprobs": logprobs}
        choice["finish_reason"] = self.request.finish_reason if final else None
        choice["stop_reason"] = self.request.stop_reason if final else None
        chunk["choices"] = [choice]
        return chunk

    def usage_chunk(self, completion_tokens: int) -> dict[str, Any]:
        chunk = self._envelope(self.object_chunk)
        chunk["choices"] = []
        chunk["usage"] = self.usage(completion_tokens)
        return chunk

    def full_response(self, tokens_per_choice: list[int], finish_reasons: list[str]) -> dict[str, Any]:
        completions = self.request.endpoint == "completions"
        body = self._envelope("text_completion" if completions else "chat.completion")
        choices = []
        for index, (tokens, reason) in enumerate(zip(tokens_per_choice, finish_reasons, strict=True)):
            text = self.request.echo_text + self.text(0, tokens)
            logprobs = self._logprobs(0, tokens, len(self.request.echo_text))
            if completions:
                choice: dict[str, Any] = {"index": index, "text": text, "logprobs": logprobs}
            else:
                choice = {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": logprobs,
                }
            choice["finish_reason"] = reason
            choice["stop_reason"] = self.request.stop_reason if reason == "stop" else None
            choices.append(choice)
        body["choices"] = choices
        body["usage"] = self.usage(sum(tokens_per_choice))
        return body

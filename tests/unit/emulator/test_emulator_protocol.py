"""Request parsing without a server: token counts, defaults, the fields errors name."""

from __future__ import annotations

from typing import Any

import pytest

from llmscale_tools.emulator.protocol import RequestError, ResponseShaper, parse_request

NAMES = ("served", "alias")


def parse(body: dict[str, Any], endpoint: str = "completions", max_model_len: int = 1000) -> Any:
    return parse_request(body, endpoint, accepted_models=NAMES, max_model_len=max_model_len)  # type: ignore[arg-type]


def test_prompt_tokens_from_hint_extra_body_ids_or_text() -> None:
    assert parse({"prompt": "x" * 41}).prompt_tokens == 11  # ceil(41 / 4)
    assert parse({"prompt": [5, 6, 7]}).prompt_tokens == 3
    assert parse({"prompt": ["abcdefgh"]}).prompt_tokens == 2
    assert parse({"prompt": "x", "llmscale_prompt_tokens": 300}).prompt_tokens == 300
    assert parse({"prompt": "x", "extra_body": {"llmscale_prompt_tokens": 42}}).prompt_tokens == 42
    chat = parse({"messages": [{"role": "user", "content": "a" * 40}]}, "chat")
    assert chat.prompt_tokens == 10 + 4


def test_defaults_model_and_output_length() -> None:
    completion = parse({"prompt": "hi"})
    assert completion.model == "served"
    assert completion.max_tokens == 16
    assert not completion.stream
    chat = parse({"model": "alias", "messages": [{"role": "user", "content": "hi"}]}, "chat")
    assert chat.model == "alias"
    assert chat.max_tokens == 128
    assert (
        parse(
            {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 7}, "chat"
        ).max_tokens
        == 7
    )
    # no limit given near the context end: what is left of the context
    assert parse({"prompt": "x", "llmscale_prompt_tokens": 990}).max_tokens == 10


@pytest.mark.parametrize(
    ("body", "param", "status"),
    [
        ({"model": "gpt", "prompt": "x"}, "model", 404),
        ({"model": 3, "prompt": "x"}, "model", 400),
        ({"prompt": {"a": 1}}, "prompt", 400),
        ({"prompt": "x", "max_tokens": True}, "max_tokens", 400),
        ({"prompt": "x", "min_tokens": 20, "max_tokens": 10}, "min_tokens", 400),
        ({"prompt": "x", "llmscale_prompt_tokens": 0}, "llmscale_prompt_tokens", 400),
        ({"prompt": "x", "extra_body": []}, "extra_body", 400),
        ({"prompt": "x", "ignore_eos": "yes"}, "ignore_eos", 400),
        ({"prompt": "x", "stream": True, "stream_options": []}, "stream_options", 400),
        ({"prompt": "x", "llmscale_prompt_tokens": 1000}, "prompt", 400),
    ],
)
def test_errors_name_the_field(body: dict[str, Any], param: str, status: int) -> None:
    with pytest.raises(RequestError) as caught:
        parse(body)
    assert caught.value.param == param
    assert caught.value.status == status
    assert caught.value.to_json()["error"]["code"] == status


def test_chat_messages_are_validated() -> None:
    for messages in ([], "hi", [{"content": "no role"}], [{"role": "user", "content": 5}]):
        with pytest.raises(RequestError) as caught:
            parse({"messages": messages}, "chat")
        assert caught.value.param == "messages"


def test_response_shapes() -> None:
    request = parse({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}, "chat")
    shaper = ResponseShaper(request)
    assert shaper.id.startswith("chatcmpl-")
    full = shaper.full_response(2, "length")
    assert full["object"] == "chat.completion"
    assert full["choices"][0]["message"] == {"role": "assistant", "content": " tok tok"}
    assert full["usage"]["completion_tokens"] == 2
    chunk = shaper.token_chunk(3, None)
    assert chunk["choices"][0]["delta"]["content"] == " tok tok tok"

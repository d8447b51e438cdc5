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
        ({"prompt": "x", "llmscale_prompt_tokens": 1000}, "input_tokens", 400),
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
    full = shaper.full_response([2], ["length"])
    assert full["object"] == "chat.completion"
    assert full["choices"][0]["message"] == {"role": "assistant", "content": " tok tok"}
    assert full["usage"]["completion_tokens"] == 2
    chunk = shaper.token_chunk(0, 3, final=False)
    assert chunk["choices"][0]["delta"]["content"] == " tok tok tok"
    assert chunk["choices"][0]["finish_reason"] is None


def test_finish_reason_is_length_with_a_limit_and_stop_without_one() -> None:
    # a client limit is honoured exactly (benchmarks); without one the model "ends" its answer
    assert parse({"prompt": "hi", "max_tokens": 5}).finish_reason == "length"
    natural = parse({"prompt": "hi"})
    assert (natural.finish_reason, natural.max_tokens) == ("stop", 16)
    assert parse({"prompt": "hi", "ignore_eos": True}).finish_reason == "length"
    # the context ends before the default length: that is a length finish
    near_end = parse({"prompt": "x", "llmscale_prompt_tokens": 990})
    assert (near_end.finish_reason, near_end.max_tokens) == ("length", 10)


def test_a_stop_string_ends_the_output_where_it_first_appears() -> None:
    # output " tok tok tok ..." (4 characters a token): "k t" first ends at character 6,
    # inside token 2, so 2 tokens are generated and the text is cut before the match (index 3)
    request = parse({"prompt": "hi", "max_tokens": 10, "stop": ["zzz", "k t"]})
    assert (request.max_tokens, request.finish_reason, request.stop_reason) == (2, "stop", "k t")
    full = ResponseShaper(request).full_response([2], ["stop"])
    assert full["choices"][0]["text"] == " to"
    assert full["choices"][0]["stop_reason"] == "k t"
    # a stop string that never appears changes nothing
    assert parse({"prompt": "hi", "max_tokens": 4, "stop": "never"}).finish_reason == "length"


def test_echo_prepends_the_prompt_to_the_first_chunk_and_the_full_text() -> None:
    request = parse({"prompt": "Hello", "max_tokens": 2, "echo": True})
    shaper = ResponseShaper(request)
    assert shaper.full_response([2], ["length"])["choices"][0]["text"] == "Hello tok tok"
    assert shaper.token_chunk(0, 1, final=False)["choices"][0]["text"] == "Hello tok"
    assert shaper.token_chunk(1, 2, final=True)["choices"][0]["text"] == " tok"


def test_logprobs_shapes_follow_the_openai_schema() -> None:
    completion = ResponseShaper(parse({"prompt": "hi", "max_tokens": 3, "logprobs": 2}))
    logprobs = completion.full_response([3], ["length"])["choices"][0]["logprobs"]
    assert logprobs["tokens"] == [" tok"] * 3
    assert logprobs["text_offset"] == [0, 4, 8]
    assert len(logprobs["top_logprobs"]) == 3 and all(len(t) == 2 for t in logprobs["top_logprobs"])
    chat_request = parse(
        {
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 2,
            "logprobs": True,
            "top_logprobs": 3,
        },
        "chat",
    )
    content = ResponseShaper(chat_request).full_response([2], ["length"])["choices"][0]["logprobs"]["content"]
    assert [c["token"] for c in content] == [" tok", " tok"]
    assert content[0]["bytes"] == [32, 116, 111, 107]
    assert len(content[0]["top_logprobs"]) == 3


def test_n_choices_each_get_an_index_and_usage_sums_them() -> None:
    request = parse({"prompt": "hi", "max_tokens": 3, "n": 2})
    assert request.n == 2
    full = ResponseShaper(request).full_response([3, 3], ["length", "length"])
    assert [c["index"] for c in full["choices"]] == [0, 1]
    assert full["usage"]["completion_tokens"] == 6


CHAT = {"messages": [{"role": "user", "content": "hi"}]}
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"temperature": -1}, "temperature"),
        ({"top_p": 5}, "top_p"),
        ({"top_p": 0}, "top_p"),
        ({"top_k": -2}, "top_k"),
        ({"min_p": 1.5}, "min_p"),
        ({"presence_penalty": 3}, "presence_penalty"),
        ({"frequency_penalty": -2.5}, "frequency_penalty"),
        ({"repetition_penalty": 0}, "repetition_penalty"),
        ({"seed": "x"}, "seed"),
        ({"stop": 5}, "stop"),
        ({"logprobs": 21}, "logprobs"),
        ({"n": 0}, "n"),
        ({"n": 2, "temperature": 0}, "n"),
    ],
)
def test_invalid_sampling_values_are_refused_as_vllm_refuses_them(body: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse({"prompt": "x", **body})
    assert (caught.value.status, caught.value.param) == (400, param)


def test_tools_need_a_tool_parser_unless_tool_choice_is_none() -> None:
    for choice in (None, "auto"):
        body = {**CHAT, "tools": [TOOL]} | ({"tool_choice": choice} if choice else {})
        with pytest.raises(RequestError) as caught:
            parse(body, "chat")
        assert "--enable-auto-tool-choice" in caught.value.message
    assert parse({**CHAT, "tools": [TOOL], "tool_choice": "none"}, "chat").max_tokens == 128
    with pytest.raises(RequestError):
        parse({**CHAT, "top_logprobs": 2}, "chat")  # top_logprobs without logprobs

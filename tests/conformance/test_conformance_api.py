"""One API contract, two servers: the emulator and real vLLM must answer alike.

Every test runs against both (the `server` fixture); the expected values come from the OpenAI
API reference and vLLM's documented behaviour, not from either server's output. Where the
emulator must differ (its text is always " tok ..."), the test states the rule both follow
(for example: the text ends right before the first occurrence of the stop string).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest
from conformance_servers import MAX_MODEL_LEN, SERVED, Server

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(1200)]
# a stable answer on both: greedy, and no early end (vLLM's ignore_eos; the emulator honours it)
GREEDY: dict[str, Any] = {"temperature": 0.0, "extra_body": {"ignore_eos": True}}
USER = [{"role": "user", "content": "Say hello to the cluster."}]


def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def post(server: Server, path: str, body: Any) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{server.url}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_models_lists_the_served_name_with_its_context(server: Server) -> None:
    models = client(server).models.list()
    (model,) = models.data
    assert model.id == SERVED and model.object == "model" and model.owned_by == "vllm"
    raw = model.model_dump()
    assert raw["max_model_len"] == MAX_MODEL_LEN
    assert {"root", "parent", "permission", "created"} <= set(raw)


def test_completion_with_max_tokens_finishes_by_length_and_counts_usage(server: Server) -> None:
    answer = client(server).completions.create(model=SERVED, prompt="Hello there", max_tokens=5, **GREEDY)
    assert answer.id.startswith("cmpl-") and answer.object == "text_completion"
    (choice,) = answer.choices
    assert choice.finish_reason == "length" and choice.index == 0
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 5
    assert answer.usage.prompt_tokens >= 1
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 5


def test_chat_completion_shape(server: Server) -> None:
    answer = client(server).chat.completions.create(model=SERVED, messages=USER, max_tokens=4, **GREEDY)  # type: ignore[arg-type]
    assert answer.id.startswith("chatcmpl-") and answer.object == "chat.completion"
    (choice,) = answer.choices
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 4


def test_streaming_chat_chunks_and_usage_with_include_usage(server: Server) -> None:
    stream = client(server).chat.completions.create(
        model=SERVED,
        messages=USER,  # type: ignore[arg-type]
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
        **GREEDY,
    )
    chunks = list(stream)
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert len({c.id for c in chunks}) == 1
    # the first chunk opens the assistant message before any token
    assert chunks[0].choices[0].delta.role == "assistant"
    with_choices = [c for c in chunks if c.choices]
    finishes = [c.choices[0].finish_reason for c in with_choices]
    assert finishes[-1] == "length" and set(finishes[:-1]) == {None}
    # the usage chunk comes last, with no choices
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_framing_is_sse_ending_with_done(server: Server) -> None:
    body = {"model": SERVED, "prompt": "Hi", "max_tokens": 3, "stream": True, "ignore_eos": True}
    request = urllib.request.Request(
        f"{server.url}/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        raw = response.read().decode()
    events = [e for e in raw.split("\n\n") if e.strip()]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert sum(len(p["choices"][0]["text"]) > 0 for p in payloads) >= 1
    assert payloads[-1]["choices"][0]["finish_reason"] == "length"


def test_stop_string_ends_the_text_before_its_first_occurrence(server: Server) -> None:
    api = client(server)
    full = (
        api.completions.create(model=SERVED, prompt="Count with me", max_tokens=12, **GREEDY).choices[0].text
    )
    # a stop string from the second half of the greedy answer (ASCII, so byte-level BPE
    # detokenises it the same way on the second run)
    start = next(
        (
            i
            for i in range(len(full) // 2, len(full) - 1)
            if full[i : i + 2].isascii() and full[i : i + 2].strip()
        ),
        None,
    )
    if start is None:
        pytest.skip(f"greedy answer {full!r} has no ASCII pair to stop on")
    stop = full[start : start + 2]
    stopped = api.completions.create(
        model=SERVED, prompt="Count with me", max_tokens=12, stop=[stop], **GREEDY
    ).choices[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == full[: full.find(stop)]
    assert stopped.model_dump()["stop_reason"] == stop


def test_echo_returns_the_prompt_before_the_answer(server: Server) -> None:
    answer = client(server).completions.create(
        model=SERVED, prompt="Echo me", max_tokens=2, echo=True, **GREEDY
    )
    assert answer.choices[0].text.startswith("Echo me")


def test_completion_logprobs_shape(server: Server) -> None:
    answer = client(server).completions.create(model=SERVED, prompt="Hi", max_tokens=3, logprobs=2, **GREEDY)
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None
    assert len(logprobs.tokens or []) == 3 and len(logprobs.token_logprobs or []) == 3
    assert len(logprobs.text_offset or []) == 3
    # k alternatives, plus the sampled token when it is not among them
    assert all(2 <= len(top) <= 3 for top in logprobs.top_logprobs or [])


def test_chat_logprobs_shape(server: Server) -> None:
    answer = client(server).chat.completions.create(
        model=SERVED,
        messages=USER,  # type: ignore[arg-type]
        max_tokens=2,
        logprobs=True,
        top_logprobs=2,
        **GREEDY,
    )
    logprobs = answer.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None and len(logprobs.content) == 2
    for item in logprobs.content:
        assert len(item.top_logprobs) == 2
        assert item.bytes == list(item.token.encode())


def test_n_two_serves_two_choices_when_sampling(server: Server) -> None:
    answer = client(server).completions.create(
        model=SERVED, prompt="Hi", max_tokens=3, n=2, temperature=1.0, extra_body={"ignore_eos": True}
    )
    assert [c.index for c in answer.choices] == [0, 1]
    assert answer.usage is not None and answer.usage.completion_tokens == 6


def test_n_two_with_greedy_sampling_is_400(server: Server) -> None:
    # n identical greedy answers would be waste: vLLM refuses them
    status, body = post(server, "/v1/completions", {"model": SERVED, "prompt": "Hi", "max_tokens": 3, "n": 2,
                                                    "temperature": 0})  # fmt: skip
    assert status == 400 and body["error"]["type"] == "BadRequestError"
    assert "greedy" in body["error"]["message"]


def test_unknown_model_is_404_not_found(server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(server).completions.create(model="no-such-model", prompt="Hi", max_tokens=2)
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["type"] == "NotFoundError" and error["code"] == 404 and error["param"] == "model"


@pytest.mark.parametrize(("field", "value"), [("temperature", -1), ("top_p", 5), ("logprobs", 25)])
def test_invalid_sampling_values_are_400_naming_the_field(server: Server, field: str, value: Any) -> None:
    status, body = post(
        server, "/v1/completions", {"model": SERVED, "prompt": "Hi", "max_tokens": 2, field: value}
    )
    assert status == 400
    assert body["error"]["type"] == "BadRequestError" and body["error"]["code"] == 400
    assert body["error"]["param"] == field


def test_auto_tool_choice_without_a_parser_is_400(server: Server) -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
    with pytest.raises(openai.BadRequestError) as caught:
        client(server).chat.completions.create(
            model=SERVED,
            messages=USER,  # type: ignore[arg-type]
            max_tokens=2,
            tools=[tool],  # type: ignore[list-item]
            tool_choice="auto",
        )
    assert "--enable-auto-tool-choice" in str(caught.value)


def test_prompt_longer_than_the_context_is_400(server: Server) -> None:
    status, body = post(
        server, "/v1/completions", {"model": SERVED, "prompt": "hello " * 3000, "max_tokens": 2}
    )
    assert status == 400
    assert body["error"]["type"] == "BadRequestError"
    assert "maximum context length is 1024" in body["error"]["message"]


def test_unknown_route_is_json_404(server: Server) -> None:
    try:
        urllib.request.urlopen(f"{server.url}/v1/nothing-here", timeout=30)
    except urllib.error.HTTPError as error:
        with error:
            assert error.code == 404
            assert error.headers["Content-Type"].startswith("application/json")
            assert json.loads(error.read()) == {"detail": "Not Found"}
    else:
        pytest.fail("an unknown route answered 2xx")

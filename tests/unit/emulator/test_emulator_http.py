"""The emulator over real HTTP on 127.0.0.1, driven by the deterministic fake engine (conftest)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from emulator_fakes import DECODE_BASE_SECONDS, DECODE_PER_REQUEST_SECONDS, PREFILL_SECONDS, FakeEngine
from prometheus_client.parser import text_string_to_metric_families

from llmscale_tools.emulator.app import RunningEmulator
from llmscale_tools.emulator.metrics import ITL_BUCKETS_SECONDS, TTFT_BUCKETS_SECONDS


async def read_sse(response: aiohttp.ClientResponse) -> list[tuple[float, str]]:
    """(arrival monotonic time, data payload) per SSE event."""
    events: list[tuple[float, str]] = []
    async for raw in response.content:
        line = raw.decode().strip()
        if line.startswith("data: "):
            events.append((time.monotonic(), line[len("data: ") :]))
    return events


def test_streaming_completion_chunks_arrive_incrementally(emulate: Any) -> None:
    max_tokens = 12

    async def scenario(emu: RunningEmulator) -> tuple[float, list[tuple[float, str]]]:
        async with aiohttp.ClientSession() as session:
            body = {"model": "fake", "prompt": "hello " * 40, "max_tokens": max_tokens, "stream": True}
            sent = time.monotonic()
            async with session.post(f"{emu.url}/v1/completions", json=body) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/event-stream")
                return sent, await read_sse(response)

    sent, events = emulate(scenario)
    assert events[-1][1] == "[DONE]"
    chunks = [(t, json.loads(data)) for t, data in events[:-1]]
    # one chunk per token, unless the handler fell behind and merged a few (as vLLM does):
    # on a quiet machine that does not happen; allow it for a starved CI runner
    tokens_per_chunk = [c["choices"][0]["text"].count("tok") for _, c in chunks]
    assert sum(tokens_per_chunk) == max_tokens
    assert len(chunks) >= 3
    assert all(c["object"] == "text_completion" for _, c in chunks)
    assert [c["choices"][0]["finish_reason"] for _, c in chunks] == [None] * (len(chunks) - 1) + ["length"]
    # one request alone: first token after one prefill step, then one decode step per token.
    # Tolerance: event-loop scheduling on a shared machine, -40 % / +40 % (+100 ms on TTFT).
    ttft = chunks[0][0] - sent
    assert PREFILL_SECONDS * 0.6 <= ttft <= PREFILL_SECONDS * 1.4 + 0.1
    step = DECODE_BASE_SECONDS + DECODE_PER_REQUEST_SECONDS
    # incremental, not one burst at the end: after the first chunk, the remaining tokens
    # arrive about one decode step apart
    later_tokens = max_tokens - tokens_per_chunk[0]
    assert later_tokens >= 4
    spread = chunks[-1][0] - chunks[0][0]
    assert step * 0.6 <= spread / later_tokens <= step * 1.4 + 0.01


def test_chat_stream_has_role_chunk_content_and_usage(emulate: Any) -> None:
    async def scenario(emu: RunningEmulator) -> list[tuple[float, str]]:
        async with aiohttp.ClientSession() as session:
            body = {
                "model": "fake",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 3,
                "stream": True,
                "stream_options": {"include_usage": True},
                "llmscale_prompt_tokens": 77,
            }
            async with session.post(f"{emu.url}/v1/chat/completions", json=body) as response:
                return await read_sse(response)

    events = emulate(scenario)
    payloads = [json.loads(data) for _, data in events[:-1]]
    assert events[-1][1] == "[DONE]"
    assert payloads[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    contents = [p["choices"][0]["delta"]["content"] for p in payloads[1:-1]]
    assert "".join(contents) == " tok tok tok" and all(contents)
    assert payloads[-2]["choices"][0]["finish_reason"] == "length"
    assert payloads[-1]["choices"] == []
    assert payloads[-1]["usage"] == {"prompt_tokens": 77, "completion_tokens": 3, "total_tokens": 80}
    assert {p["object"] for p in payloads} == {"chat.completion.chunk"}


def test_non_streaming_completion_and_models(emulate: Any) -> None:
    async def scenario(emu: RunningEmulator) -> tuple[Any, Any, int]:
        async with aiohttp.ClientSession() as session:
            body = {"model": "fake", "prompt": [1, 2, 3, 4, 5], "max_tokens": 4}
            async with session.post(f"{emu.url}/v1/completions", json=body) as response:
                completion = await response.json()
            async with session.get(f"{emu.url}/v1/models") as response:
                models = await response.json()
            async with session.get(f"{emu.url}/health") as response:
                health = response.status
        return completion, models, health

    completion, models, health = emulate(scenario)
    assert health == 200
    assert completion["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    assert completion["choices"][0]["finish_reason"] == "length"
    assert completion["choices"][0]["text"].count("tok") == 4
    assert [m["id"] for m in models["data"]] == ["fake"]
    assert models["data"][0]["max_model_len"] == 4096


def test_errors_have_vllm_shape_and_name_the_field(emulate: Any) -> None:
    cases: list[tuple[Any, int, str]] = [
        ({"model": "other", "prompt": "x"}, 404, "model"),
        ({"model": "fake", "prompt": "x", "max_tokens": "ten"}, 400, "max_tokens"),
        ({"model": "fake", "prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
        ({"model": "fake"}, 400, "prompt"),
        ({"model": "fake", "prompt": "x", "stream": "yes"}, 400, "stream"),
        ({"model": "fake", "prompt": "x", "n": 0}, 400, "n"),
        ({"model": "fake", "prompt": "x", "temperature": -1}, 400, "temperature"),
        ({"model": "fake", "prompt": "x", "top_p": 5}, 400, "top_p"),
        ({"model": "fake", "prompt": "x", "llmscale_prompt_tokens": 5000}, 400, "input_tokens"),
        ({"model": "fake", "prompt": "x", "max_tokens": 4096}, 400, "max_tokens"),
        ({"model": "fake", "prompt": "x", "stream_options": {"include_usage": True}}, 400, "stream_options"),
    ]

    async def scenario(emu: RunningEmulator) -> list[tuple[int, Any]]:
        results = []
        async with aiohttp.ClientSession() as session:
            for body, _, _ in cases:
                async with session.post(f"{emu.url}/v1/completions", json=body) as response:
                    results.append((response.status, await response.json()))
            async with session.post(f"{emu.url}/v1/completions", data=b"{not json") as response:
                results.append((response.status, await response.json()))
        return results

    results = emulate(scenario)
    for (body, status, field), (got_status, got) in zip(cases, results, strict=False):
        assert got_status == status, body
        assert set(got["error"]) == {"message", "type", "param", "code"}
        assert got["error"]["code"] == status
        assert got["error"]["param"] == field, body
        assert (
            field in got["error"]["message"] or status == 404 or "context length" in got["error"]["message"]
        )
    assert results[0][1]["error"]["type"] == "NotFoundError"
    assert "`other` does not exist" in results[0][1]["error"]["message"]
    assert results[-1][0] == 400 and "JSON" in results[-1][1]["error"]["message"]


def _families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_metrics_parse_with_vllm_names_labels_and_buckets(emulate: Any) -> None:
    async def scenario(emu: RunningEmulator) -> str:
        async with aiohttp.ClientSession() as session:
            body = {"model": "fake", "prompt": "abcd" * 10, "max_tokens": 5}
            await asyncio.gather(*(session.post(f"{emu.url}/v1/completions", json=body) for _ in range(3)))
            async with session.get(f"{emu.url}/metrics") as response:
                return await response.text()

    families = _families(emulate(scenario))
    for name in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:cache_config_info",
        "vllm:num_requests_waiting_by_reason",
    ):
        assert families[name].type == "gauge", name
    # the parser strips _total from counter family names
    assert families["vllm:prompt_tokens"].type == "counter"
    generation = [s for s in families["vllm:generation_tokens"].samples if s.name.endswith("_total")]
    assert generation[0].value == 15
    assert generation[0].labels == {"model_name": "fake", "engine": "0"}
    success = {
        s.labels["finished_reason"]: s.value
        for s in families["vllm:request_success"].samples
        if s.name.endswith("_total")
    }
    assert success == {"stop": 0.0, "length": 3.0, "abort": 0.0}
    ttft = families["vllm:time_to_first_token_seconds"]
    bounds = [float(s.labels["le"]) for s in ttft.samples if s.name.endswith("_bucket")]
    assert bounds[:-1] == list(TTFT_BUCKETS_SECONDS)
    count = [s.value for s in ttft.samples if s.name.endswith("_count")]
    assert count == [3.0]
    itl = families["vllm:inter_token_latency_seconds"]
    assert [float(s.labels["le"]) for s in itl.samples if s.name.endswith("_bucket")][:-1] == list(
        ITL_BUCKETS_SECONDS
    )
    assert [s.value for s in itl.samples if s.name.endswith("_count")] == [12.0]
    for name in (
        "vllm:e2e_request_latency_seconds",
        "vllm:request_queue_time_seconds",
        "vllm:request_prompt_tokens",
        "vllm:request_generation_tokens",
    ):
        assert families[name].type == "histogram", name
    assert "vllm:gpu_cache_usage_perc" not in families


def test_legacy_metric_names(emulate: Any) -> None:
    async def scenario(emu: RunningEmulator) -> str:
        async with aiohttp.ClientSession() as session, session.get(f"{emu.url}/metrics") as response:
            return await response.text()

    families = _families(emulate(scenario, metrics_names="legacy"))
    assert "vllm:gpu_cache_usage_perc" in families
    assert "vllm:time_per_output_token_seconds" in families
    assert "vllm:avg_generation_throughput_toks_per_s" in families
    assert "vllm:kv_cache_usage_perc" not in families
    assert "vllm:inter_token_latency_seconds" not in families
    assert "vllm:num_requests_waiting_by_reason" not in families
    running = families["vllm:num_requests_running"].samples[0]
    assert running.labels == {"model_name": "fake"}


def test_ttft_grows_when_requests_queue_for_batch_slots(emulate: Any) -> None:
    engine = FakeEngine(slots=2)

    async def one(session: aiohttp.ClientSession, url: str) -> float:
        body = {"model": "fake", "prompt": "x", "max_tokens": 5, "stream": True}
        sent = time.monotonic()
        async with session.post(f"{url}/v1/completions", json=body) as response:
            events = await read_sse(response)
        return events[0][0] - sent

    async def scenario(emu: RunningEmulator) -> list[float]:
        async with aiohttp.ClientSession() as session:
            return list(await asyncio.gather(*(one(session, emu.url) for _ in range(4))))

    ttfts = sorted(emulate(scenario, engine))
    # two slots: the last two wait for the first two to finish 5 tokens (~ prefill + 4 decodes)
    first_pair_finish = 2 * PREFILL_SECONDS + 4 * (DECODE_BASE_SECONDS + 2 * DECODE_PER_REQUEST_SECONDS)
    assert ttfts[0] < 0.2
    assert ttfts[3] >= 0.7 * first_pair_finish
    assert ttfts[3] > ttfts[0] + 0.5 * first_pair_finish


def test_client_disconnect_cancels_the_request(emulate: Any) -> None:
    engine = FakeEngine()

    async def scenario(emu: RunningEmulator) -> str:
        async with aiohttp.ClientSession() as session:
            body = {"model": "fake", "prompt": "x", "max_tokens": 10_00, "stream": True}
            response = await session.post(f"{emu.url}/v1/completions", json=body)
            await response.content.readline()
            response.close()
            deadline = time.monotonic() + 2.0
            while not engine.cancelled and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            async with session.get(f"{emu.url}/metrics") as metrics:
                return await metrics.text()

    text = emulate(scenario, engine)
    assert len(engine.cancelled) == 1
    success = {
        s.labels["finished_reason"]: s.value
        for s in _families(text)["vllm:request_success"].samples
        if s.name.endswith("_total")
    }
    assert success["abort"] == 1.0


def test_drain_refuses_new_requests_and_finishes_in_flight(emulate: Any) -> None:
    async def scenario(emu: RunningEmulator) -> tuple[int, int, Any, bool]:
        async with aiohttp.ClientSession() as session:
            body = {"model": "fake", "prompt": "x", "max_tokens": 20}
            in_flight = asyncio.ensure_future(session.post(f"{emu.url}/v1/completions", json=body))
            deadline = time.monotonic() + 2.0
            while emu.server.engine_loop.in_flight == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            emu.server.begin_drain()
            async with session.get(f"{emu.url}/health") as response:
                health = response.status
            async with session.post(f"{emu.url}/v1/completions", json=body) as response:
                refused = response.status
            drained = await emu.server.wait_idle(5.0)
            finished = await (await in_flight).json()
        return health, refused, finished, drained

    health, refused, finished, drained = emulate(scenario)
    assert health == 503
    assert refused == 503
    assert drained
    assert finished["usage"]["completion_tokens"] == 20


def test_n_choices_stream_with_their_index_and_usage_counts_all(emulate: Any) -> None:
    async def scenario(emu: RunningEmulator) -> list[dict[str, Any]]:
        body = {
            "model": "fake",
            "prompt": "hi",
            "max_tokens": 3,
            "n": 2,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{emu.url}/v1/completions", json=body) as response,
        ):
            events = await read_sse(response)
        return [json.loads(data) for _, data in events if data != "[DONE]"]

    chunks = emulate(scenario)
    text = {0: "", 1: ""}
    finish = {}
    for chunk in chunks[:-1]:
        (choice,) = chunk["choices"]
        text[choice["index"]] += choice["text"]
        if choice["finish_reason"]:
            finish[choice["index"]] = choice["finish_reason"]
    assert text == {0: " tok tok tok", 1: " tok tok tok"}
    assert finish == {0: "length", 1: "length"}
    assert chunks[-1]["usage"]["completion_tokens"] == 6


def test_unknown_routes_answer_json_404(emulate: Any) -> None:
    async def scenario(emu: RunningEmulator) -> tuple[int, str, Any]:
        async with aiohttp.ClientSession() as session, session.get(f"{emu.url}/v1/nothing") as response:
            return response.status, response.content_type, await response.json()

    assert emulate(scenario) == (404, "application/json", {"detail": "Not Found"})

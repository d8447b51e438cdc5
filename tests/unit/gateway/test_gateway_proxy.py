"""The gateway over real HTTP on 127.0.0.1: routing, streaming, holding at zero, rejections."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiohttp
import pytest
from gateway_testkit import FakeUpstream, eventually, running_gateway, serving_upstream

from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.routing import Endpoint
from llmscale_tools.fakes.gateway import FakeEndpointSource

pytestmark = pytest.mark.timeout(30)

NS, NAME, MODEL = "team", "llama", "llama-8b"


def source_with_model(
    served: str | None = MODEL, model_id: str = "meta-llama/Llama-3.1-8B"
) -> FakeEndpointSource:
    source = FakeEndpointSource()
    source.add_deployment(NS, NAME, model_id, served)
    return source


def completion(stream: bool = False, model: str = MODEL) -> dict[str, Any]:
    return {"model": model, "prompt": "hello", "max_tokens": 4, "stream": stream}


def test_forwards_to_the_ready_endpoint_and_rewrites_a_model_id() -> None:
    async def main() -> None:
        async with (
            serving_upstream(FakeUpstream("a")) as up,
            running_gateway(source=source_with_model()) as gw,
        ):
            gw.source.set_endpoints(NS, NAME, [up.endpoint])
            async with aiohttp.ClientSession() as client:
                async with client.post(gw.url + "/v1/completions", json=completion()) as resp:
                    assert resp.status == 200
                    assert await resp.json() == {"upstream": "a", "model": MODEL}
                # the model id of a deployment with a served name is accepted and rewritten
                body = completion(model="meta-llama/Llama-3.1-8B")
                async with client.post(gw.url + "/v1/chat/completions", json=body) as resp:
                    assert resp.status == 200
                    assert (await resp.json())["model"] == MODEL

    asyncio.run(main())


def test_streaming_is_passed_through_chunk_by_chunk() -> None:
    async def main() -> None:
        up = FakeUpstream("a", chunks=3, gated=True)
        async with serving_upstream(up), running_gateway(source=source_with_model()) as gw:
            gw.source.set_endpoints(NS, NAME, [up.endpoint])
            async with (
                aiohttp.ClientSession() as client,
                client.post(gw.url + "/v1/completions", json=completion(stream=True)) as resp,
            ):
                assert resp.status == 200
                for i in range(3):
                    up.allow(1)
                    # each chunk arrives before the upstream is allowed to write the next one
                    line = await asyncio.wait_for(resp.content.readline(), 5)
                    assert line == f"data: a-{i}\n".encode()
                    assert await resp.content.readline() == b"\n"
                assert await resp.content.read() == b"data: [DONE]\n\n"

    asyncio.run(main())


def test_request_at_zero_is_held_signalled_and_forwarded_when_a_replica_is_ready() -> None:
    async def main() -> None:
        up = FakeUpstream("a")
        async with serving_upstream(up), running_gateway(source=source_with_model()) as gw:
            loop = asyncio.get_running_loop()
            async with aiohttp.ClientSession() as client:
                sent_at = loop.time()
                request = asyncio.create_task(client.post(gw.url + "/v1/completions", json=completion()))
                await asyncio.wait_for(gw.signaller.called.wait(), 5)
                namespace, name, requested_at, signalled_at = gw.signaller.calls[0]
                assert (namespace, name) == (NS, NAME)
                assert requested_at.tzinfo is not None
                assert signalled_at - sent_at < 1.0
                await eventually(lambda: gw.gateway.held((NS, NAME)) == 1)
                async with client.get(gw.url + "/metrics") as metrics:
                    text = await metrics.text()
                assert f'llmscale_gateway_queue_depth{{llmdeployment="{NAME}",namespace="{NS}"}} 1.0' in text
                labels = f'{{llmdeployment="{NAME}",namespace="{NS}"'
                assert f"llmscale_gateway_arrivals_total{labels}}} 1.0" in text
                assert f'llmscale_gateway_activation_signals_total{labels},result="ok"}} 1.0' in text
                assert not request.done()
                gw.source.set_endpoints(NS, NAME, [up.endpoint])
                resp = await asyncio.wait_for(request, 5)
                assert resp.status == 200
                assert (await resp.json())["upstream"] == "a"
                resp.release()
                assert gw.gateway.held((NS, NAME)) == 0

    asyncio.run(main())


def test_held_streaming_client_gets_headers_at_once_then_keepalives_then_data() -> None:
    async def main() -> None:
        up = FakeUpstream("a", chunks=1)
        config = GatewayConfig(port=0, auth="none", keepalive_interval_seconds=0.05)
        async with (
            serving_upstream(up),
            running_gateway(config, source_with_model()) as gw,
            aiohttp.ClientSession() as client,
            client.post(gw.url + "/v1/completions", json=completion(stream=True)) as resp,
        ):
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            for _ in range(3):
                assert await asyncio.wait_for(resp.content.readline(), 5) == b": keep-alive\n"
                assert await resp.content.readline() == b"\n"
            gw.source.set_endpoints(NS, NAME, [up.endpoint])
            rest = (await asyncio.wait_for(resp.content.read(), 5)).decode()
            assert rest.replace(": keep-alive\n\n", "") == "data: a-0\n\ndata: [DONE]\n\n"

    asyncio.run(main())


def test_overflow_gets_503_with_retry_after_and_a_known_model_is_never_404() -> None:
    async def main() -> None:
        config = GatewayConfig(port=0, auth="none", queue_size=1, retry_after_seconds=7)
        async with running_gateway(config, source_with_model()) as gw, aiohttp.ClientSession() as client:
            first = asyncio.create_task(client.post(gw.url + "/v1/completions", json=completion()))
            await eventually(lambda: gw.gateway.held((NS, NAME)) == 1)
            async with client.post(gw.url + "/v1/completions", json=completion()) as resp:
                assert resp.status == 503
                assert resp.headers["Retry-After"] == "7"
                assert (await resp.json())["error"]["code"] == "queue_full"
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first

    asyncio.run(main())


def test_hold_timeout_is_503_for_plain_and_an_error_event_for_streams() -> None:
    async def main() -> None:
        config = GatewayConfig(port=0, auth="none", hold_timeout_seconds=0.3, keepalive_interval_seconds=0.1)
        async with running_gateway(config, source_with_model()) as gw, aiohttp.ClientSession() as client:
            async with client.post(gw.url + "/v1/completions", json=completion()) as resp:
                assert resp.status == 503
                assert resp.headers["Retry-After"] == "5"
                assert (await resp.json())["error"]["code"] == "hold_timeout"
            async with client.post(gw.url + "/v1/completions", json=completion(stream=True)) as resp:
                assert resp.status == 200  # headers were sent when the hold began
                text = (await resp.content.read()).decode()
                assert text.startswith(": keep-alive\n\n")
                assert '"code": "hold_timeout"' in text.split("data: ", 1)[1]
            assert gw.gateway.held((NS, NAME)) == 0

    asyncio.run(main())


def test_client_disconnect_cancels_the_upstream_request() -> None:
    async def main() -> None:
        up = FakeUpstream("a", chunks=5, gated=True)
        async with serving_upstream(up), running_gateway(source=source_with_model()) as gw:
            gw.source.set_endpoints(NS, NAME, [up.endpoint])
            async with aiohttp.ClientSession() as client:
                resp = await client.post(gw.url + "/v1/completions", json=completion(stream=True))
                up.allow(1)
                assert await asyncio.wait_for(resp.content.readline(), 5) == b"data: a-0\n"
                resp.close()  # the client goes away mid-stream
            await asyncio.wait_for(up.cancelled.wait(), 5)
            await eventually(lambda: gw.gateway.table.in_flight(up.endpoint) == 0)

    asyncio.run(main())


def test_a_replica_dying_mid_stream_ends_the_stream_with_an_error_event() -> None:
    async def main() -> None:
        up = FakeUpstream("a", chunks=5)
        up.break_after = 1
        async with serving_upstream(up), running_gateway(source=source_with_model()) as gw:
            gw.source.set_endpoints(NS, NAME, [up.endpoint])
            async with (
                aiohttp.ClientSession() as client,
                client.post(gw.url + "/v1/completions", json=completion(stream=True)) as resp,
            ):
                text = (await asyncio.wait_for(resp.content.read(), 5)).decode()
            assert text.startswith("data: a-0\n\n")
            assert '"code": "upstream_broken"' in text and "[DONE]" not in text

    asyncio.run(main())


def test_least_outstanding_requests_spreads_concurrent_requests() -> None:
    async def main() -> None:
        a, b = FakeUpstream("a"), FakeUpstream("b")
        a.block, b.block = asyncio.Event(), asyncio.Event()
        async with (
            serving_upstream(a),
            serving_upstream(b),
            running_gateway(source=source_with_model()) as gw,
        ):
            gw.source.set_endpoints(NS, NAME, [a.endpoint, b.endpoint])
            async with aiohttp.ClientSession() as client:
                tasks = []
                for expected_total in (1, 2, 3, 4):
                    tasks.append(
                        asyncio.create_task(client.post(gw.url + "/v1/completions", json=completion()))
                    )
                    await eventually(lambda n=expected_total: len(a.requests) + len(b.requests) == n)
                # 4 concurrent requests on 2 idle replicas: 2 each, never 3 on one
                assert (len(a.requests), len(b.requests)) == (2, 2)
                a.block.set()
                b.block.set()
                for resp in await asyncio.gather(*tasks):
                    assert resp.status == 200
                    resp.release()

    asyncio.run(main())


def test_terminating_and_unready_endpoints_get_no_new_requests() -> None:
    async def main() -> None:
        a, b = FakeUpstream("a"), FakeUpstream("b")
        async with (
            serving_upstream(a),
            serving_upstream(b),
            running_gateway(source=source_with_model()) as gw,
        ):
            terminating = Endpoint("127.0.0.1", a.port, ready=False, terminating=True)
            gw.source.set_endpoints(NS, NAME, [terminating, b.endpoint])
            async with aiohttp.ClientSession() as client:
                for _ in range(4):
                    async with client.post(gw.url + "/v1/completions", json=completion()) as resp:
                        assert (await resp.json())["upstream"] == "b"
            assert a.requests == []

    asyncio.run(main())


def test_a_refusing_or_unready_replica_moves_the_request_to_another() -> None:
    async def main() -> None:
        a, b = FakeUpstream("a"), FakeUpstream("b")
        a.status = 503  # e.g. draining
        async with (
            serving_upstream(a),
            serving_upstream(b),
            running_gateway(source=source_with_model()) as gw,
        ):
            dead = Endpoint("127.0.0.1", 9)  # discard port: nothing listens on 127.0.0.1:9
            gw.source.set_endpoints(NS, NAME, [dead, a.endpoint, b.endpoint])
            async with aiohttp.ClientSession() as client:
                for _ in range(6):
                    async with client.post(gw.url + "/v1/completions", json=completion()) as resp:
                        assert resp.status == 200
                        assert (await resp.json())["upstream"] == "b"

    asyncio.run(main())


def test_a_held_stream_refused_by_its_first_replica_is_held_again_and_served_by_the_next() -> None:
    async def main() -> None:
        a, b = FakeUpstream("a", chunks=1), FakeUpstream("b", chunks=1)
        a.status = 503
        config = GatewayConfig(port=0, auth="none", keepalive_interval_seconds=0.05)
        async with (
            serving_upstream(a),
            serving_upstream(b),
            running_gateway(config, source_with_model()) as gw,
        ):
            async with (
                aiohttp.ClientSession() as client,
                client.post(gw.url + "/v1/completions", json=completion(stream=True)) as resp,
            ):
                assert await asyncio.wait_for(resp.content.readline(), 5) == b": keep-alive\n"
                assert await resp.content.readline() == b"\n"
                gw.source.set_endpoints(NS, NAME, [a.endpoint])  # wakes the request; `a` refuses
                await eventually(lambda: len(a.requests) == 1)
                await eventually(lambda: gw.gateway.held((NS, NAME)) == 1)  # held again, same response
                gw.source.set_endpoints(NS, NAME, [a.endpoint, b.endpoint])
                text = (await asyncio.wait_for(resp.content.read(), 5)).decode()
            assert text.replace(": keep-alive\n\n", "") == "data: b-0\n\ndata: [DONE]\n\n"

    asyncio.run(main())


def test_a_held_client_that_disconnects_leaves_the_queue() -> None:
    async def main() -> None:
        async with running_gateway(source=source_with_model()) as gw:
            async with aiohttp.ClientSession() as client:
                resp = await client.post(gw.url + "/v1/completions", json=completion(stream=True))
                await eventually(lambda: gw.gateway.held((NS, NAME)) == 1)
                resp.close()
            await eventually(lambda: gw.gateway.held((NS, NAME)) == 0)

    asyncio.run(main())


def test_a_replica_ready_before_it_listens_gets_the_request_once_it_listens() -> None:
    async def main() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        up = FakeUpstream("late")
        up.port = port
        async with running_gateway(source=source_with_model()) as gw, aiohttp.ClientSession() as client:
            gw.source.set_endpoints(NS, NAME, [up.endpoint])  # Ready, but nothing listens yet
            request = asyncio.create_task(client.post(gw.url + "/v1/completions", json=completion()))
            await eventually(lambda: gw.gateway.held((NS, NAME)) == 1)
            assert not gw.signaller.calls  # a replica exists: no activation needed
            async with serving_upstream(up):
                resp = await asyncio.wait_for(request, 5)
                assert resp.status == 200
                assert (await resp.json())["upstream"] == "late"

    asyncio.run(main())


@pytest.mark.parametrize(
    ("body", "field"),
    [(b"{not json", None), (b'{"prompt": "x"}', "model"), (b'{"model": 3}', "model"), (b"[1]", None)],
)
def test_bad_requests_are_400_naming_the_field(body: bytes, field: str | None) -> None:
    async def main() -> None:
        async with (
            running_gateway(source=source_with_model()) as gw,
            aiohttp.ClientSession() as client,
            client.post(gw.url + "/v1/completions", data=body) as resp,
        ):
            assert resp.status == 400
            error = (await resp.json())["error"]
            assert error["param"] == field
            if field:
                assert "'model'" in error["message"]

    asyncio.run(main())


def test_unknown_model_is_404_with_an_openai_error_listing_known_models() -> None:
    async def main() -> None:
        async with running_gateway(source=source_with_model()) as gw, aiohttp.ClientSession() as client:
            async with client.post(gw.url + "/v1/completions", json=completion(model="gpt-9")) as resp:
                assert resp.status == 404
                error = (await resp.json())["error"]
                assert error["code"] == "model_not_found" and error["param"] == "model"
                assert MODEL in error["message"]
            async with client.get(gw.url + "/v1/models") as resp:
                models = await resp.json()
                assert [m["id"] for m in models["data"]] == [MODEL]
                assert models["data"][0]["llmscale"]["ready_endpoints"] == 0
            async with client.get(gw.url + "/metrics") as resp:
                text = await resp.text()
                assert 'llmscale_gateway_unroutable_requests_total{reason="unknown_model"} 1.0' in text

    asyncio.run(main())


def test_before_the_first_listing_a_request_waits_instead_of_404() -> None:
    async def main() -> None:
        up = FakeUpstream("a")
        source = FakeEndpointSource(synced=False)
        async with (
            serving_upstream(up),
            running_gateway(source=source) as gw,
            aiohttp.ClientSession() as client,
        ):
            async with client.get(gw.url + "/health") as resp:
                assert resp.status == 503
            request = asyncio.create_task(client.post(gw.url + "/v1/completions", json=completion()))
            await asyncio.sleep(0.05)
            assert not request.done()
            source.add_deployment(NS, NAME, "meta-llama/Llama-3.1-8B", MODEL)
            source.set_endpoints(NS, NAME, [up.endpoint])
            source.mark_synced()
            resp = await asyncio.wait_for(request, 5)
            assert resp.status == 200
            resp.release()
            async with client.get(gw.url + "/health") as resp:
                assert resp.status == 200

    asyncio.run(main())


def test_a_request_held_twice_counts_once_in_held_requests() -> None:
    """A replica that refuses right after Ready re-holds the request: still one held request."""

    async def main() -> None:
        a, b = FakeUpstream("a", chunks=1), FakeUpstream("b", chunks=1)
        a.status = 503
        async with (
            serving_upstream(a),
            serving_upstream(b),
            running_gateway(GatewayConfig(port=0, auth="none"), source_with_model()) as gw,
        ):
            async with aiohttp.ClientSession() as client:
                pending = asyncio.ensure_future(client.post(gw.url + "/v1/completions", json=completion()))
                await eventually(lambda: gw.gateway.held((NS, NAME)) == 1)
                gw.source.set_endpoints(NS, NAME, [a.endpoint])  # wakes it; `a` refuses -> held again
                await eventually(lambda: len(a.requests) == 1)
                gw.source.set_endpoints(NS, NAME, [a.endpoint, b.endpoint])
                resp = await asyncio.wait_for(pending, 5)
                assert resp.status == 200
                resp.release()
            held = gw.gateway.metrics.held.labels(NS, NAME)._value.get()
            assert held == 1.0

    asyncio.run(main())

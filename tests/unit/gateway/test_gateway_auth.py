"""API keys: 401 without or with a wrong key (and no wake-up), 403 out of scope, 429 over the
rate, key Secrets parsed strictly, rejections counted, tokens never logged."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import aiohttp
import pytest
from gateway_testkit import FakeUpstream, running_gateway, serving_upstream

from llmscale.errors import UserInputError
from llmscale.gateway.auth import KeySecretError, KeyStore, bearer_token, parse_key_secret
from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.keysource import parse_key_secrets
from llmscale.gateway.routing import DeploymentRoute
from llmscale_tools.fakes.gateway import FakeEndpointSource

pytestmark = pytest.mark.timeout(30)

GOOD = "k" * 40
OTHER = "o" * 40


def secret(name: str, **data: str) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"metadata": {"name": name, "namespace": "llmscale-system"}, "data": encoded}


def store(*secrets: dict[str, Any], rpm: int = 600) -> KeyStore:
    keys, problems = parse_key_secrets(list(secrets), rpm)
    assert problems == []
    result = KeyStore()
    result.replace(keys, 0)
    return result


def source() -> FakeEndpointSource:
    src = FakeEndpointSource()
    src.add_deployment("team-a", "llama", "meta-llama/Llama-3.1-8B", "llama-8b")
    src.add_deployment("team-b", "mistral", "mistralai/Mistral-7B", "mistral-7b")
    return src


def body(model: str) -> dict[str, Any]:
    return {"model": model, "prompt": "hi", "max_tokens": 2}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_and_wrong_keys_get_openai_401_and_never_wake_a_deployment() -> None:
    async def main() -> None:
        keys = store(secret("team-a", token=GOOD, namespaces="team-a"))
        config = GatewayConfig(port=0, hold_timeout_seconds=5)
        async with running_gateway(config, source(), keys) as gw, aiohttp.ClientSession() as client:
            for headers in ({}, auth(OTHER), {"Authorization": f"Basic {GOOD}"}):
                async with client.post(
                    gw.url + "/v1/completions", json=body("llama-8b"), headers=headers
                ) as r:
                    assert r.status == 401
                    error = (await r.json())["error"]
                    assert set(error) == {"message", "type", "param", "code"}
                    assert error["type"] == "invalid_request_error"
                    assert error["code"] in ("missing_api_key", "invalid_api_key")
            async with client.get(gw.url + "/v1/models") as r:
                assert r.status == 401
            # nothing was held, nothing signalled, nothing counted as an arrival
            assert gw.signaller.calls == []  # the deployment has no endpoints: a valid key would wake it
            assert gw.gateway.held(("team-a", "llama")) == 0
            metrics = gw.gateway.metrics
            assert metrics.arrivals.labels("team-a", "llama")._value.get() == 0
            assert metrics.auth_rejections.labels("missing_key")._value.get() == 3  # none, Basic, /v1/models
            assert metrics.auth_rejections.labels("invalid_key")._value.get() == 1
            assert b'llmscale_gateway_auth_rejections_total{reason="invalid_key"} 1.0' in metrics.render()

    asyncio.run(main())


def test_a_valid_key_is_forwarded_and_a_key_for_another_scope_is_403() -> None:
    async def main() -> None:
        up = FakeUpstream("a", chunks=1)
        keys = store(
            secret("team-a", token=GOOD, namespaces="team-a"),
            secret("mistral-only", token=OTHER, models="mistral-7b"),
        )
        src = source()
        async with serving_upstream(up), running_gateway(GatewayConfig(port=0), src, keys) as gw:
            src.set_endpoints("team-a", "llama", [up.endpoint])
            async with aiohttp.ClientSession() as client:
                async with client.post(
                    gw.url + "/v1/completions", json=body("llama-8b"), headers=auth(GOOD)
                ) as r:
                    assert r.status == 200
                async with client.post(
                    gw.url + "/v1/completions", json=body("llama-8b"), headers=auth(OTHER)
                ) as r:
                    assert r.status == 403
                    assert (await r.json())["error"]["code"] == "model_not_permitted"
                async with client.get(gw.url + "/v1/models", headers=auth(OTHER)) as r:
                    assert [m["id"] for m in (await r.json())["data"]] == ["mistral-7b"]
            assert len(up.requests) == 1
            assert gw.gateway.metrics.auth_rejections.labels("forbidden_model")._value.get() == 1

    asyncio.run(main())


def test_rate_limit_answers_429_with_retry_after_once_the_burst_is_spent() -> None:
    async def main() -> None:
        up = FakeUpstream("a", chunks=1)
        # 6 per minute: 0.1 request/s, a burst of 10 s worth = 1 request
        keys = store(secret("slow", token=GOOD, models="*", requestsPerMinute="6"))
        src = source()
        async with serving_upstream(up), running_gateway(GatewayConfig(port=0), src, keys) as gw:
            src.set_endpoints("team-a", "llama", [up.endpoint])
            async with aiohttp.ClientSession() as client:
                statuses = []
                for _ in range(2):
                    async with client.post(
                        gw.url + "/v1/completions", json=body("llama-8b"), headers=auth(GOOD)
                    ) as r:
                        statuses.append(r.status)
                        retry_after = r.headers.get("Retry-After")
                        error = (await r.json()).get("error")
                assert statuses == [200, 429]
                assert error is not None and error["code"] == "rate_limit_exceeded"
                # the empty bucket refills one request in 1 / 0.1 = 10 s
                assert retry_after == "10"

    asyncio.run(main())


def test_key_secrets_are_parsed_strictly_and_name_the_field() -> None:
    cases = {
        "data.token is missing": secret("a", models="*"),
        r"data.token must be 32-512": secret("b", token="short", models="*"),
        "set data.models or data.namespaces": secret("c", token=GOOD),
        "data.requestsPerMinute '0' must be a whole number >= 1": secret(
            "d", token=GOOD, models="*", requestsPerMinute="0"
        ),
    }
    for expected, bad in cases.items():
        with pytest.raises(KeySecretError, match=expected) as info:
            parse_key_secret(bad, 600)
        assert "Secret llmscale-system/" in str(info.value)
    not_base64 = {"metadata": {"name": "e", "namespace": "ns"}, "data": {"token": "%%%"}}
    with pytest.raises(KeySecretError, match=r"data\.token is not base64"):
        parse_key_secret(not_base64, 600)
    keys, problems = parse_key_secrets([secret("ok", token=GOOD, models="*"), secret("x")], 600)
    assert [k.name for k in keys] == ["llmscale-system/ok"]
    assert problems == ["Secret llmscale-system/x: data.token is missing or empty"]


def test_the_token_is_not_in_the_key_repr_or_the_problem_lines(caplog: pytest.LogCaptureFixture) -> None:
    key = parse_key_secret(secret("ok", token=GOOD, models="*"), 600)
    assert GOOD not in repr(key)
    with pytest.raises(KeySecretError) as info:
        parse_key_secret(secret("bad", token=GOOD, requestsPerMinute="x", models="*"), 600)
    assert GOOD not in str(info.value)
    caplog.set_level(logging.DEBUG)
    assert GOOD not in caplog.text


def test_scope_both_dimensions_must_match() -> None:
    key = parse_key_secret(secret("s", token=GOOD, models="llama-8b", namespaces="team-a"), 600)
    assert key.permits(DeploymentRoute("team-a", "llama", "meta", "llama-8b"))
    assert not key.permits(DeploymentRoute("team-b", "llama", "meta", "llama-8b"))
    assert not key.permits(DeploymentRoute("team-a", "other", "meta", "other-8b"))


def test_bearer_parsing_and_rate_limit_zero_is_a_startup_error() -> None:
    assert bearer_token("Bearer abc") == "abc" and bearer_token("bearer  abc ") == "abc"
    assert (
        bearer_token("Bearer ") is None and bearer_token("Token abc") is None and bearer_token(None) is None
    )
    with pytest.raises(UserInputError, match="--rate-limit: value 0 must be a whole number"):
        GatewayConfig(rate_limit_per_minute=0)
    with pytest.raises(UserInputError, match="--auth: value 'off' must be api-key or none"):
        GatewayConfig(auth="off")  # type: ignore[arg-type]


def test_with_auth_on_and_no_key_source_everything_is_refused() -> None:
    async def main() -> None:
        async with running_gateway(GatewayConfig(port=0), source()) as gw, aiohttp.ClientSession() as c:
            async with c.post(gw.url + "/v1/completions", json=body("llama-8b"), headers=auth(GOOD)) as r:
                assert r.status == 401
            assert gw.signaller.calls == []
            async with c.get(gw.url + "/health") as r:
                assert (await r.json())["api_keys"] == 0

    asyncio.run(main())

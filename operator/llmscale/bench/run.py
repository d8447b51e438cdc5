"""A whole benchmark: check the endpoint, run every load level, assemble the report."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from llmscale.bench.client import Api, Target, fetch_models
from llmscale.bench.load import Level, LevelPlan, Workload, new_session, run_level
from llmscale.bench.report import Progress, capacity_hint
from llmscale.bench.stats import PERCENTILE_METHOD, Slo, summarize
from llmscale.errors import LLMScaleError, UserInputError

PRECHECK_TIMEOUT_SECONDS = 10.0


class EndpointUnavailableError(LLMScaleError):
    """The server cannot be reached (or answers nothing usable) before the run starts."""


@dataclass(frozen=True)
class BenchSettings:
    url: str
    model: str | None
    api: Api | None
    levels: tuple[Level, ...]
    requests: int | None
    duration_seconds: float | None
    timeout_seconds: float
    slo: Slo
    seed: int = 0
    stagger_seconds: float = 0.1


def split_url(url: str) -> tuple[str, Api | None]:
    """Base URL and, when the URL names an endpoint, which API it is."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserInputError(
            f"--url: value {url!r} is not an http(s) URL; expected e.g. http://127.0.0.1:8000"
        )
    path = parts.path.rstrip("/")
    api: Api | None = None
    for suffix, kind in (("/v1/chat/completions", "chat"), ("/v1/completions", "completions")):
        if path.endswith(suffix):
            path, api = path[: -len(suffix)], kind  # type: ignore[assignment]
            break
    else:
        if path.endswith("/v1"):
            path = path[: -len("/v1")]
    return f"{parts.scheme}://{parts.netloc}{path}", api


def default_requests(level: Level) -> int:
    """Enough requests for a p95 to mean something, without running for minutes."""
    if level.mode == "concurrency":
        return max(20, 5 * int(level.value))
    return max(20, math.ceil(level.value * 20))


async def resolve_target(session: aiohttp.ClientSession, settings: BenchSettings) -> Target:
    base, api_from_url = split_url(settings.url)
    api: Api = settings.api or api_from_url or "completions"
    try:
        served = await fetch_models(session, base, min(settings.timeout_seconds, PRECHECK_TIMEOUT_SECONDS))
    except aiohttp.ClientResponseError as exc:
        if settings.model is None:
            raise EndpointUnavailableError(
                f"{base}/v1/models answered HTTP {exc.status} ({exc.message}); pass --model NAME"
            ) from None
        served = []  # e.g. a gateway without /v1/models: requests will tell
    except aiohttp.ClientConnectorError as exc:
        reason = (exc.os_error.strerror if exc.os_error else None) or str(exc)
        raise EndpointUnavailableError(f"cannot reach {base}: {reason}") from None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        raise EndpointUnavailableError(f"cannot reach {base}: {reason}") from None
    if settings.model is None:
        if not served:
            raise EndpointUnavailableError(f"{base}/v1/models lists no model; pass --model NAME")
        return Target(base, served[0], api)
    if served and settings.model not in served:
        raise UserInputError(
            f"--model: value {settings.model!r} is not served by {base}; it serves {', '.join(served)}"
        )
    return Target(base, settings.model, api)


def level_keys(level: Level) -> dict[str, Any]:
    return {
        "level": level.label,
        "mode": level.mode,
        "concurrency": int(level.value) if level.mode == "concurrency" else None,
        "rate_rps": level.value if level.mode == "rate" else None,
    }


async def run_bench(
    settings: BenchSettings, workload: Workload, workload_info: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    async with new_session() as session:
        target = await resolve_target(session, settings)
        levels: list[dict[str, Any]] = []
        for level in settings.levels:
            requests = settings.requests
            if requests is None and settings.duration_seconds is None:
                requests = default_requests(level)
            plan = LevelPlan(
                level,
                requests,
                settings.duration_seconds,
                settings.timeout_seconds,
                settings.seed,
                stagger_seconds=settings.stagger_seconds,
            )
            progress.begin(level.label, requests)
            run = await run_level(session, target, plan, workload, progress.update)
            summary = {**level_keys(level), **summarize(run.results, settings.slo, run.wall_seconds)}
            summary["peak_in_flight"] = run.peak_in_flight
            progress.end(summary)
            levels.append(summary)
    return {
        "url": target.url,
        "model": target.model,
        "api": target.api,
        "workload": workload_info,
        "slo": {"ttft_p95_s": settings.slo.ttft_p95_seconds, "itl_p95_s": settings.slo.itl_p95_seconds},
        "percentile_method": PERCENTILE_METHOD,
        "levels": levels,
        "capacity_hint": capacity_hint(levels),
    }


def run_sync(
    settings: BenchSettings, workload: Workload, workload_info: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    return asyncio.run(run_bench(settings, workload, workload_info, progress))


def all_failed(levels: Sequence[dict[str, Any]]) -> bool:
    return all(level["completed"] == 0 for level in levels)

"""Assemble an emulator (engine + metrics + routes) and run it until SIGTERM, then drain."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from llmscale.errors import EnvironmentSetupError
from llmscale_tools.emulator.config import EmulatorConfig
from llmscale_tools.emulator.metrics import VllmMetrics
from llmscale_tools.emulator.runtime import EngineLoop, ModelClock, StepEngine
from llmscale_tools.emulator.server import EmulatorServer

# vLLM's default context when neither the flag nor the model says otherwise
FALLBACK_MAX_MODEL_LEN = 8192
BLOCK_SIZE_TOKENS = 16


@dataclass(frozen=True)
class EngineSpec:
    """What the routes need to know about the modelled replica besides its engine."""

    engine: StepEngine
    max_model_len: int
    kv_cache_tokens: int


def model_engine(config: EmulatorConfig) -> EngineSpec:
    """The replica performance model's step engine for this config (llmscale.sim)."""
    from llmscale.sim.engine import ContinuousBatchingEngine
    from llmscale.sim.perfmodel import ReplicaPerformanceModel

    options = {"max_model_len": config.max_model_len} if config.max_model_len else {}
    perf = ReplicaPerformanceModel.for_deployment(
        config.model, config.gpu, config.tensor_parallel_size, **options
    )
    if config.max_num_seqs is not None:
        perf = perf.with_limits(max_num_seqs=config.max_num_seqs)
    max_model_len = config.max_model_len or perf.max_model_len or FALLBACK_MAX_MODEL_LEN
    return EngineSpec(ContinuousBatchingEngine(perf), max_model_len, perf.kv_cache_tokens)


EngineFactory = Callable[[EmulatorConfig], EngineSpec]


def build_server(config: EmulatorConfig, engine_factory: EngineFactory = model_engine) -> EmulatorServer:
    spec = engine_factory(config)
    metrics = VllmMetrics(
        model_name=config.primary_name,
        max_model_len=spec.max_model_len,
        generation=config.metrics_names,
        num_gpu_blocks=spec.kv_cache_tokens // BLOCK_SIZE_TOKENS,
        block_size=BLOCK_SIZE_TOKENS,
    )
    loop = EngineLoop(spec.engine, metrics, ModelClock(config.speedup))
    return EmulatorServer(config, loop, metrics, spec.max_model_len)


class RunningEmulator:
    """A started server (for tests and the CLI): `url`, then `drain_and_stop()`."""

    def __init__(self, server: EmulatorServer, runner: web.AppRunner, site: web.TCPSite, port: int) -> None:
        self.server = server
        self._runner = runner
        self._site = site
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.server.config.host}:{self.port}"

    async def drain_and_stop(self, timeout_seconds: float | None = None) -> bool:
        """Stop taking requests, let in-flight ones finish (bounded), close. True if all finished."""
        self.server.begin_drain()
        limit = self.server.config.drain_timeout_seconds if timeout_seconds is None else timeout_seconds
        drained = await self.server.wait_idle(limit)
        await self._site.stop()
        await self._runner.cleanup()
        return drained


async def start_emulator(
    config: EmulatorConfig, engine_factory: EngineFactory = model_engine
) -> RunningEmulator:
    server = build_server(config, engine_factory)
    # handler_cancellation: a client that disconnects cancels its handler, which cancels the
    # request in the engine (otherwise a non-streaming request would run to the end)
    runner = web.AppRunner(server.build_app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port, backlog=2048)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise EnvironmentSetupError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from exc
    port = config.port
    if port == 0:
        port = int(runner.addresses[0][1])
    return RunningEmulator(server, runner, site, port)


async def serve_until_signal(config: EmulatorConfig, engine_factory: EngineFactory = model_engine) -> int:
    running = await start_emulator(config, engine_factory)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    print(
        f"llmscale emulate: serving {config.primary_name} ({config.model} on {config.gpu}) at {running.url}",
        file=sys.stderr,
        flush=True,
    )
    await stop.wait()
    in_flight = running.server.engine_loop.in_flight
    print(f"llmscale emulate: draining {in_flight} in-flight request(s)", file=sys.stderr, flush=True)
    drained = await running.drain_and_stop()
    if not drained:
        print("llmscale emulate: drain timed out; closing remaining requests", file=sys.stderr, flush=True)
    return 0 if drained else 1

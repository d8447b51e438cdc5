"""`llmscale demo`: orchestration, live view and summary (docs/demo.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmscale.errors import UserInputError
from llmscale.percentile import percentile
from llmscale_tools.demo import STRATEGIES
from llmscale_tools.demo.live import DemoView, Totals
from llmscale_tools.demo.workload import Schedule

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
SERVED_NAME = "demo-llama"
DEPLOYMENT = "demo-llama"
GPU = (
    "A100-80GB"  # 8 fake A100s on node gpu-a100-0; ~6 req/s per replica for the code trace's 2k-token prompts
)
MAX_REPLICAS = 4
STARTUP_DELAY = "8s"
REQUEST_TIMEOUT_SECONDS = 150.0
DRAIN_LIMIT_SECONDS = 150.0
ENGINES = ("emulator", "vllm")
# Real vLLM on CPU: ~3.4 GB and a real start-up (~40 s on idle cores) per replica; its tiny
# model has a 1024-token context, so trace prompts and outputs are capped to fit.
VLLM_MAX_REPLICAS = 2
# the bench client's prompt words are one tiny-model token each after a space (768 words: 769
# tokens with BOS); 512 words + BOS + 128 output tokens fit the 1024-token context with room
VLLM_MAX_PROMPT_TOKENS = 512
VLLM_MAX_OUTPUT_TOKENS = 128
VLLM_START_BUDGET_SECONDS = 900.0
# Short windows so a 4-minute demo shows a whole cycle (production defaults are minutes).
DEMO_OVERRIDES = {
    "scale_down_delay_seconds": 20.0,
    "idle_window_seconds": 20.0,
    "stable_window_seconds": 20.0,
    "cold_start_seconds": 10.0,
    "min_history_seconds": 60.0,
    "strategy_dwell_seconds": 60.0,
}


def repo_root() -> Path:
    env = os.environ.get("LLMSCALE_REPO_ROOT")
    if env:
        return Path(env).resolve()
    candidate = Path(__file__).resolve().parents[3]
    return candidate if (candidate / "pyproject.toml").is_file() else Path.cwd()


@dataclass(frozen=True)
class DemoOptions:
    trace: Path
    speedup: float
    duration_seconds: float
    strategy: str
    plot: Path
    keep_cluster: bool
    json_output: bool
    engine: str = "emulator"

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DemoOptions:
        trace = (
            Path(args.trace)
            if args.trace
            else repo_root() / ".." / "shared" / "traces" / "AzureLLMInferenceTrace_code.csv"
        )
        if not trace.is_file():
            raise UserInputError(f"--trace: file {str(trace)!r} does not exist")
        if not (math.isfinite(args.speedup) and args.speedup > 0):
            raise UserInputError(f"--speedup: value {args.speedup!r} is invalid; expected a number > 0")
        if not (math.isfinite(args.duration) and 10 <= args.duration <= 3600):
            raise UserInputError(
                f"--duration: value {args.duration!r} is invalid; expected 10 to 3600 seconds"
            )
        if args.strategy not in STRATEGIES:
            raise UserInputError(
                f"--strategy: value {args.strategy!r} is invalid; expected one of {', '.join(STRATEGIES)}"
            )
        plot = Path(args.plot)
        if plot.suffix.lower() != ".png":
            raise UserInputError(f"--plot: value {args.plot!r} is invalid; expected a .png file name")
        engine = getattr(args, "engine", "emulator")
        if engine not in ENGINES:
            raise UserInputError(f"--engine: value {engine!r} is invalid; expected emulator or vllm")
        if engine == "vllm":
            from llmscale_tools.localcluster import vllm_env

            vllm_env.require_ready()
        return cls(
            trace, args.speedup, args.duration, args.strategy, plot, args.keep_cluster, args.json, engine
        )


def _max_replicas(engine: str) -> int:
    return VLLM_MAX_REPLICAS if engine == "vllm" else MAX_REPLICAS


def manifest(namespace: str, strategy: str, engine: str = "emulator") -> dict[str, Any]:
    real = engine == "vllm"
    max_replicas = _max_replicas(engine)
    scaling: dict[str, Any] = {"strategy": strategy, "maxReplicas": max_replicas, "slo": {"ttftP95": "2s"}}
    if strategy == "Warm":
        scaling["replicas"] = max_replicas // 2
    return {
        "apiVersion": "llmscale.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": DEPLOYMENT, "namespace": namespace},
        "spec": {
            "model": {"name": MODEL, "servedName": SERVED_NAME},
            "engine": {"maxModelLen": 8192},
            "resources": {"gpu": {"product": GPU, "count": 1}},
            "scaling": scaling,
            "podLabels": {"llmscale.dev/runner": "vllm" if real else "emulator"},
            # a real engine's start-up is its own; the emulator's is simulated
            "podAnnotations": {"llmscale.dev/startup-delay": "0s" if real else STARTUP_DELAY},
            "terminationGracePeriodSeconds": 60,
        },
    }


@dataclass
class Run:
    results: list[Any] = field(default_factory=list)
    sent_times: list[float] = field(default_factory=list)
    in_flight: int = 0
    sent_at_zero: int = 0
    timeline: list[dict[str, Any]] = field(default_factory=list)


class Demo:
    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.out = sys.stderr if options.json_output else sys.stdout
        self.root = repo_root()
        self.view = DemoView(self.out, f"llmscale demo: {options.strategy}")

    def say(self, text: str) -> None:
        self.view.say(text)

    def execute(self) -> dict[str, Any]:
        from kubernetes import client, config

        from llmscale_tools.demo.stack import Stack
        from llmscale_tools.demo.workload import build_schedule
        from llmscale_tools.localcluster import LocalCluster

        schedule = build_schedule(
            self.options.trace, duration_seconds=self.options.duration_seconds, speedup=self.options.speedup
        )
        cluster = LocalCluster.from_environment(self.root)
        if not cluster.is_up():
            self.say("starting the local control plane and Prometheus (about a minute) ...")
        # attach, not up: a cluster that test sessions share stays up for them when the demo ends
        cluster.attach()
        api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))  # type: ignore[no-untyped-call]
        core = client.CoreV1Api(api_client)
        namespace = f"llmscale-demo-{uuid.uuid4().hex[:5]}"
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        stack = Stack.on_local_cluster(cluster, namespace)
        try:
            self.say(
                f"namespace {namespace}: starting the operator and the gateway (logs in {stack.log_dir})"
            )
            stack.start_operator(interval_seconds=2.0, overrides=DEMO_OVERRIDES)
            real = self.options.engine == "vllm"
            stack.start_gateway(hold_timeout_seconds=VLLM_START_BUDGET_SECONDS if real else 120.0)
            client.CustomObjectsApi(api_client).create_namespaced_custom_object(
                "llmscale.dev",
                "v1alpha1",
                namespace,
                "llmdeployments",
                manifest(namespace, self.options.strategy, self.options.engine),
            )
            pods = (
                "real CPU vLLM pods (tiny model), cold start vLLM's own"
                if real
                else f"emulated pods, cold start {STARTUP_DELAY}"
            )
            self.say(
                f"applied LLMDeployment {DEPLOYMENT} ({MODEL} on {GPU}, strategy {self.options.strategy}, "
                f"{pods}); replaying {len(schedule)} requests over "
                f"{self.options.duration_seconds:.0f}s from {schedule.trace_name} "
                f"(x{schedule.speedup:g} speed, every {schedule.keep_every}. request)"
            )
            with self.view:
                run = asyncio.run(self._replay(schedule, stack, api_client, namespace))
            held = _gateway_counter(stack.gateway_url, "llmscale_gateway_held_requests_total")
            status = _status(api_client, namespace)
            summary = self._summary(run, schedule, held, status, namespace)
            from llmscale_tools.demo.plot import write_plot

            write_plot(
                self.options.plot,
                run.timeline,
                f"llmscale demo: {self.options.strategy}, {schedule.trace_name}",
            )
            summary["plot"] = str(self.options.plot)
            return summary
        finally:
            stack.stop_all()
            with contextlib.suppress(client.exceptions.ApiException):
                core.delete_namespace(namespace, propagation_policy="Background")
            if not self.options.keep_cluster and cluster.detach():
                self.say("stopped the local control plane (the demo had started it)")

    async def _replay(self, schedule: Schedule, stack: Any, api_client: Any, namespace: str) -> Run:
        import aiohttp

        from llmscale.bench.client import Target, prompt_ids, send_request

        run = Run()
        target = Target(url=stack.gateway_url, model=SERVED_NAME)
        start = time.monotonic()
        real = self.options.engine == "vllm"
        timeout = VLLM_START_BUDGET_SECONDS if real else REQUEST_TIMEOUT_SECONDS
        ids = prompt_ids()

        async def one(prompt_tokens: int, output_tokens: int) -> None:
            if real:
                prompt_tokens = min(prompt_tokens, VLLM_MAX_PROMPT_TOKENS)
                output_tokens = min(output_tokens, VLLM_MAX_OUTPUT_TOKENS)
            run.in_flight += 1
            try:
                result = await send_request(session, target, prompt_tokens, output_tokens, timeout, next(ids))
                result.start_seconds -= start
                run.results.append(result)
            finally:
                run.in_flight -= 1

        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        ) as session:
            monitor = asyncio.create_task(self._monitor(run, start, api_client, namespace))
            tasks = []
            for at, prompt, output in zip(
                schedule.arrival_seconds, schedule.input_tokens, schedule.output_tokens, strict=True
            ):
                delay = start + at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                run.sent_times.append(time.monotonic() - start)
                if run.timeline and run.timeline[-1]["ready"] == 0:
                    run.sent_at_zero += 1  # no Ready replica: the gateway holds it
                tasks.append(asyncio.create_task(one(prompt, output)))
            remaining = self.options.duration_seconds - (time.monotonic() - start)
            if remaining > 0:
                await asyncio.sleep(remaining)
            if tasks:
                await asyncio.wait(tasks, timeout=max(timeout, DRAIN_LIMIT_SECONDS))
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)
            for task in tasks:
                task.cancel()
        return run

    async def _monitor(self, run: Run, start: float, api_client: Any, namespace: str) -> None:
        while True:
            now = time.monotonic() - start
            body, deployment = await asyncio.to_thread(_read_state, api_client, namespace)
            status = (body or {}).get("status") or {}
            spec_replicas = ((deployment or {}).get("spec") or {}).get("replicas") or 0
            ready = ((deployment or {}).get("status") or {}).get("readyReplicas") or 0
            decisions = status.get("lastDecisions") or [{}]
            recent = [
                r.ttft_seconds
                for r in run.results
                if r.ok and r.ttft_seconds is not None and r.start_seconds + r.ttft_seconds >= now - 10
            ]
            sample = {
                "t": round(now, 1),
                "load_rps": sum(1 for s in run.sent_times if s >= now - 1.0),
                "in_flight": run.in_flight,
                "desired": status.get("desiredReplicas")
                if status.get("desiredReplicas") is not None
                else spec_replicas,
                "replicas": int(spec_replicas),
                "ready": int(ready),
                "strategy": status.get("strategy") or "-",
                "reason": decisions[-1].get("reason") or "-",
                "ttft_p95_s": percentile(recent, 95),
            }
            run.timeline.append(sample)
            succeeded = sum(1 for r in run.results if r.ok)
            failed = len(run.results) - succeeded
            self.view.show(sample, Totals(len(run.sent_times), succeeded, failed, run.in_flight))
            await asyncio.sleep(max(0.0, 1.0 - ((time.monotonic() - start) - now)))

    def _summary(
        self, run: Run, schedule: Schedule, held: float | None, status: dict[str, Any], namespace: str
    ) -> dict[str, Any]:
        ok = [r for r in run.results if r.ok]
        replicas = [s["replicas"] for s in run.timeline]
        ups = sum(1 for a, b in itertools.pairwise(replicas) if b > a)
        downs = sum(1 for a, b in itertools.pairwise(replicas) if b < a)
        to_zero = sum(1 for a, b in itertools.pairwise(replicas) if b == 0 and a > 0)
        wakes = sum(1 for a, b in itertools.pairwise(replicas) if a == 0 and b > 0)
        gpu_hours = 0.0
        for a, b in zip(run.timeline, run.timeline[1:], strict=False):
            gpu_hours += a["replicas"] * (b["t"] - a["t"]) / 3600.0
        elapsed = run.timeline[-1]["t"] - run.timeline[0]["t"] if len(run.timeline) > 1 else 0.0
        ttfts = [r.ttft_seconds for r in ok if r.ttft_seconds is not None]
        p95 = percentile(ttfts, 95)
        return {
            "strategy": self.options.strategy,
            "engine": self.options.engine,
            "requests": len(run.sent_times),
            "succeeded": len(ok),
            "failed": len(run.sent_times) - len(ok),
            "errors": sorted({f"{r.error}: {r.error_detail}"[:120] for r in run.results if not r.ok})[:5],
            "ttft_p95_s": None if p95 is None else round(p95, 3),
            "ttft_p50_s": None if not ttfts else round(percentile(ttfts, 50) or 0.0, 3),
            "scale_ups": ups,
            "scale_downs": downs,
            "scaled_to_zero": to_zero,
            "wake_ups": wakes,
            # the gateway's own count (each request once); the client-side estimate (sent while
            # the live view showed zero ready replicas) only when the gateway cannot be read
            "held_requests": run.sent_at_zero if held is None else int(held),
            "gpu_hours": round(gpu_hours, 5),
            "gpu_hours_always_on_at_max": round(_max_replicas(self.options.engine) * elapsed / 3600.0, 5),
            "peak_replicas": max(replicas, default=0),
            "duration_s": round(elapsed, 1),
            "operator_cost": status.get("cost"),
            "operator_cold_start": status.get("coldStart"),
            "namespace": namespace,
            "schedule": schedule.to_json_dict(),
        }


def _read_state(api_client: Any, namespace: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    from kubernetes import client

    try:
        body: Any = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
            "llmscale.dev", "v1alpha1", namespace, "llmdeployments", DEPLOYMENT
        )
    except client.exceptions.ApiException:
        body = None
    try:
        raw: Any = client.AppsV1Api(api_client).read_namespaced_deployment(
            DEPLOYMENT, namespace, _preload_content=False
        )
        deployment = json.loads(raw.data)
    except client.exceptions.ApiException:
        deployment = None
    return body, deployment


def _status(api_client: Any, namespace: str) -> dict[str, Any]:
    body, _ = _read_state(api_client, namespace)
    return dict((body or {}).get("status") or {})


def _gateway_counter(url: str, name: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    from llmscale_tools.demo.stack import http_get

    code, text = http_get(f"{url}/metrics")
    if code != 200:
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


def render_summary(summary: dict[str, Any]) -> str:
    keys = (
        "strategy", "requests", "succeeded", "failed", "ttft_p95_s", "ttft_p50_s", "scale_ups", "scale_downs",
        "scaled_to_zero", "wake_ups", "held_requests", "gpu_hours", "gpu_hours_always_on_at_max",
        "peak_replicas", "duration_s", "plot",
    )  # fmt: skip
    return "\n".join(f"  {key:<28} {summary.get(key)}" for key in keys)


def run_demo(options: DemoOptions) -> int:
    demo = Demo(options)
    summary = demo.execute()
    if options.json_output:
        print(json.dumps(summary, indent=2))
    else:
        print("\nsummary:\n" + render_summary(summary))
    return 0 if summary["failed"] == 0 else 1

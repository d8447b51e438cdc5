"""Acceptance on the local control plane: the gateway wakes a deployment at zero, and the metrics
adapter reads the replica's series from the real Prometheus.

No operator runs here: the test plays its part (it scales the stand-in Deployment when the
gateway's activation annotation appears), so what is exercised is the gateway's real watches
(LLMDeployment + EndpointSlices), its real PATCH, a real emulated vLLM pod started by the pod
runner, and the adapter's PromQL over real scrapes (pod discovery labels `namespace` and
`llmdeployment`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes import client, config

from llmscale.gateway.config import GatewayConfig
from llmscale.gateway.server import RunningGateway, start_gateway
from llmscale.gateway.sources import ACTIVATION_ANNOTATION
from llmscale.metrics.prometheus import PrometheusMetricsSource
from llmscale.metrics.promql import QueryWindows

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

REPO_ROOT = Path(__file__).resolve().parents[2]
NAME, SERVED = "wake", "wake-model"
GROUP, VERSION, PLURAL = "llmscale.dev", "v1alpha1", "llmdeployments"


def stand_in_workload(
    replicas: int = 0, speedup: float = 20.0
) -> tuple[client.V1Service, client.V1Deployment]:
    """What the operator would build for LLMDeployment `wake`: a Service and a vLLM Deployment."""
    labels = {"llmscale.dev/deployment": NAME, "app.kubernetes.io/instance": NAME}
    service = client.V1Service(
        metadata=client.V1ObjectMeta(name=NAME, labels=labels),
        spec=client.V1ServiceSpec(
            selector=labels, ports=[client.V1ServicePort(name="http", port=8000, target_port=8000)]
        ),
    )
    pod_labels = {**labels, "app.kubernetes.io/name": "vllm", "llmscale.dev/runner": "emulator"}
    annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8000",
        "prometheus.io/path": "/metrics",
        "llmscale.dev/startup-delay": "2s",
        "llmscale.dev/emulator-speedup": f"{speedup:g}",
    }
    container = client.V1Container(
        name="vllm",
        image="vllm/vllm-openai:v0.11.0",
        command=["vllm", "serve", "llama-3.1-8b", "--port", "8000", "--served-model-name", SERVED],
        ports=[client.V1ContainerPort(name="http", container_port=8000)],
        resources=client.V1ResourceRequirements(limits={"nvidia.com/gpu": "1"}),
    )
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name=NAME, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=pod_labels, annotations=annotations),
                spec=client.V1PodSpec(
                    containers=[container],
                    node_selector={"nvidia.com/gpu.product": "NVIDIA-L4"},
                    tolerations=[
                        client.V1Toleration(key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
                    ],
                    termination_grace_period_seconds=5,
                ),
            ),
        ),
    )
    return service, deployment


def create_llmdeployment_and_workload(
    cluster: Any,
    namespace: str,
    kubectl: Callable[..., Any],
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
    custom_objects: client.CustomObjectsApi,
    *,
    replicas: int,
    speedup: float = 20.0,
) -> None:
    if not cluster.has_fake_gpu_nodes:
        pytest.skip("needs the local cluster's fake GPU nodes and pod runner")
    # The CRD is cluster-scoped and shared with other tests: install it only when absent, and
    # never delete or re-own it.
    if kubectl("get", f"crd/{PLURAL}.{GROUP}", "-o", "name", check=False).returncode != 0:
        kubectl("create", "-f", str(REPO_ROOT / "crds"))
    kubectl("wait", "--for=condition=Established", f"crd/{PLURAL}.{GROUP}", "--timeout=30s")
    custom_objects.create_namespaced_custom_object(
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "LLMDeployment",
            "metadata": {"name": NAME},
            "spec": {
                "model": {"name": "llama-3.1-8b", "servedName": SERVED},
                "resources": {"gpu": {"product": "L4"}},
            },
        },
    )
    service, deployment = stand_in_workload(replicas, speedup)
    core_v1.create_namespaced_service(namespace, service)
    apps_v1.create_namespaced_deployment(namespace, deployment)


async def kube_gateway(cluster: Any, namespace: str, config_: GatewayConfig) -> RunningGateway:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return await start_gateway(replace(config_, namespaces=(namespace,)), api_client=api_client)


async def wait_healthy(http: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 30
    while True:  # the watches list once, then /health is 200
        async with http.get(url + "/health") as resp:
            if resp.status == 200:
                return
        assert time.monotonic() < deadline, "gateway never synced"
        await asyncio.sleep(0.2)


def register_gateway_target(cluster: Any, url: str) -> Path | None:
    if cluster.local is None:
        return None
    prometheus_dir = Path(cluster.local.state_dir) / "prometheus"
    if "llmscale-gateway" not in (prometheus_dir / "prometheus.yml").read_text():
        return None
    port = url.rsplit(":", 1)[1]
    target_file = prometheus_dir / "targets" / f"gateway-{port}.json"
    target_file.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"]}]))
    return target_file


async def check_metrics(namespace: str, prometheus_url: str, *, gateway_scraped: bool) -> None:
    """The adapter reads the replica's (and, when scraped, the gateway's) signals for the deployment."""
    source = PrometheusMetricsSource(prometheus_url, windows=QueryWindows(rate_window_seconds=30))
    try:
        deadline = time.monotonic() + 60
        while True:
            snapshot = await source.fetch_current(time.time())
            metrics = snapshot.get((namespace, NAME))
            if (
                metrics is not None
                and (metrics.request_rate_rps or 0) > 0
                and metrics.ttft_p95_seconds
                and (not gateway_scraped or (metrics.gateway_arrivals_rps or 0) > 0)
            ):
                break
            assert time.monotonic() < deadline, f"signals missing for {namespace}/{NAME}: {snapshot}"
            await asyncio.sleep(1)
        assert metrics.kv_cache_usage is not None
        assert metrics.itl_p95_seconds is not None
        assert metrics.num_requests_running is not None
        assert metrics.engine_reporting
        if gateway_scraped:
            assert metrics.gateway_queue_depth == 0.0
            assert not metrics.proves_idle
    finally:
        source.close()


def test_gateway_wakes_a_deployment_at_zero_and_metrics_come_from_real_prometheus(
    cluster: Any,
    namespace: str,
    kubectl: Callable[..., Any],
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
    custom_objects: client.CustomObjectsApi,
    prometheus: Any,
    wait_for: Callable[..., Any],
) -> None:
    create_llmdeployment_and_workload(
        cluster, namespace, kubectl, core_v1, apps_v1, custom_objects, replicas=0
    )

    def annotation() -> str | None:
        obj = custom_objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, NAME)
        return (obj["metadata"].get("annotations") or {}).get(ACTIVATION_ANNOTATION)

    async def main() -> None:
        running = await kube_gateway(
            cluster,
            namespace,
            GatewayConfig(port=0, auth="none", hold_timeout_seconds=60, keepalive_interval_seconds=1),
        )
        gateway, url = running.gateway, running.url
        # let the cluster's Prometheus scrape this in-process gateway (the local cluster's
        # `llmscale-gateway` file_sd job, as the demo does), when that job exists
        target_file = register_gateway_target(cluster, url)
        try:
            async with aiohttp.ClientSession() as http:
                await wait_healthy(http, url)
                async with http.get(url + "/v1/models") as resp:
                    models = (await resp.json())["data"]
                assert [(m["id"], m["llmscale"]["ready_endpoints"]) for m in models] == [(SERVED, 0)]

                # at zero replicas: the request is held (never 404/503) and the operator is signalled
                sent = time.monotonic()
                body = {"model": SERVED, "prompt": "hello " * 20, "max_tokens": 8, "stream": True}
                stream = await http.post(url + "/v1/completions", json=body)
                assert stream.status == 200
                assert await asyncio.wait_for(stream.content.readline(), 10) == b": keep-alive\n"
                plain = asyncio.create_task(
                    http.post(url + "/v1/completions", json={**body, "stream": False})
                )
                while (await asyncio.to_thread(annotation)) is None:
                    assert time.monotonic() - sent < 5, "no activation annotation within 5 s"
                    await asyncio.sleep(0.1)
                signal_seconds = time.monotonic() - sent
                assert signal_seconds < 2.0, f"activation signal took {signal_seconds:.2f}s"
                assert not plain.done()

                # the operator's part: scale 0 -> 1; the held requests are forwarded when Ready
                scaled = time.monotonic()
                await asyncio.to_thread(
                    apps_v1.patch_namespaced_deployment_scale, NAME, namespace, {"spec": {"replicas": 1}}
                )
                endpoint_seen: list[float] = []

                async def watch_table() -> None:
                    while not gateway.table.routable_endpoints((namespace, NAME)):
                        await asyncio.sleep(0.01)
                    endpoint_seen.append(time.monotonic())

                watcher = asyncio.create_task(watch_table())
                resp = await asyncio.wait_for(plain, 120)
                answered = time.monotonic()
                await asyncio.wait_for(watcher, 5)
                # the modelled cold start is the 2 s startup delay; the rest is scheduling, the
                # EndpointSlice propagation, the emulator's boot and the gateway
                print(
                    f"\nactivation signal after {signal_seconds:.2f}s; after the scale-up the gateway saw a "
                    f"ready endpoint at {endpoint_seen[0] - scaled:.2f}s and answered the held request at "
                    f"{answered - scaled:.2f}s (startup delay 2 s)"
                )
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["choices"]
                resp.release()
                text = (await asyncio.wait_for(stream.content.read(), 60)).decode()
                assert text.rstrip().endswith("data: [DONE]"), text[-300:]
                stream.release()

                # some steady traffic so rate() and histogram_quantile() have samples
                async def one() -> None:
                    async with http.post(url + "/v1/completions", json={**body, "stream": False}) as r:
                        assert r.status == 200
                        await r.read()

                # Traffic goes on while the signals are read (bounded: at most 300 rounds): a
                # Prometheus that discovers the woken pod only after a burst ends sees its counters
                # start non-zero and never increase, so rate() would stay 0 on a loaded machine.
                async def trickle() -> None:
                    for _ in range(300):
                        await asyncio.gather(one(), one(), one())
                        await asyncio.sleep(0.3)

                traffic = asyncio.create_task(trickle())
                try:
                    await check_metrics(namespace, prometheus.url, gateway_scraped=target_file is not None)
                finally:
                    traffic.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await traffic
        finally:
            await running.stop()
            if target_file is not None:
                target_file.unlink(missing_ok=True)

    asyncio.run(main())


def test_scale_down_under_load_drops_no_request_through_the_gateway(
    cluster: Any,
    namespace: str,
    kubectl: Callable[..., Any],
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
    custom_objects: client.CustomObjectsApi,
    wait_for: Callable[..., Any],
) -> None:
    """2 -> 1 replicas while streams are in flight and new requests keep coming: all succeed.

    The gateway stops routing to the terminating pod when its EndpointSlice entry turns
    terminating; requests already on it finish while the emulator drains (SIGTERM from the pod
    runner); a request that races the update and meets the draining replica's 503 moves over.
    """
    create_llmdeployment_and_workload(
        cluster, namespace, kubectl, core_v1, apps_v1, custom_objects, replicas=2, speedup=1.0
    )
    wait_for(
        lambda: apps_v1.read_namespaced_deployment(NAME, namespace).status.ready_replicas == 2,
        90,
        "2 ready replicas",
    )

    async def main() -> list[int]:
        running = await kube_gateway(
            cluster, namespace, GatewayConfig(port=0, auth="none", hold_timeout_seconds=60)
        )
        gateway, url = running.gateway, running.url
        outcomes: list[int] = []
        try:
            async with aiohttp.ClientSession() as http:
                await wait_healthy(http, url)
                deadline = time.monotonic() + 60
                # KWOK marks a pod Ready on a timer: also wait until both emulators answer, so
                # that the replica being removed really has streams in flight
                while True:
                    endpoints = gateway.table.routable_endpoints((namespace, NAME))
                    healthy = 0
                    for endpoint in endpoints:
                        try:
                            async with http.get(endpoint.url + "/health") as resp:
                                healthy += resp.status == 200
                        except aiohttp.ClientError:
                            pass
                    if healthy == 2:
                        break
                    assert time.monotonic() < deadline, "2 serving replicas never showed up"
                    await asyncio.sleep(0.3)

                async def one(max_tokens: int) -> None:
                    body = {"model": SERVED, "prompt": "hi " * 20, "max_tokens": max_tokens, "stream": True}
                    async with http.post(url + "/v1/completions", json=body) as resp:
                        text = (await resp.read()).decode()
                        ok = resp.status == 200 and text.rstrip().endswith("data: [DONE]")
                        outcomes.append(200 if ok else resp.status * 10 + 1)

                # long streams on both replicas (about 1-2 s of decoding each at speedup 1)
                in_flight = [asyncio.create_task(one(60)) for _ in range(6)]
                await asyncio.sleep(0.3)
                await asyncio.to_thread(
                    apps_v1.patch_namespaced_deployment_scale, NAME, namespace, {"spec": {"replicas": 1}}
                )
                # new, short requests keep arriving during and after the scale-down
                for _ in range(15):
                    in_flight.append(asyncio.create_task(one(4)))
                    await asyncio.sleep(0.2)
                await asyncio.wait_for(asyncio.gather(*in_flight), 120)
        finally:
            await running.stop()
        return outcomes

    pods_before = {p.metadata.name for p in core_v1.list_namespaced_pod(namespace).items}
    outcomes = asyncio.run(main())
    assert len(outcomes) == 21
    assert outcomes == [200] * 21, f"failed requests (status*10+1): {[o for o in outcomes if o != 200]}"
    if cluster.local is not None:
        # evidence that the removed replica had requests in flight and finished them
        pods_after = {p.metadata.name for p in core_v1.list_namespaced_pod(namespace).items}
        removed = pods_before - pods_after
        log_text = "".join(
            (Path(cluster.local.pods_dir) / f"{namespace}_{pod}.log").read_text(errors="replace")
            for pod in removed
            if (Path(cluster.local.pods_dir) / f"{namespace}_{pod}.log").exists()
        )
        drained = [line for line in log_text.splitlines() if "in-flight request(s)" in line]
        assert drained and not drained[0].startswith("llmscale emulate: draining 0 "), log_text[-500:]

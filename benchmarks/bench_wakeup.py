"""Wake-up benchmark: a request held at zero replicas, answered after the modelled cold start.

On the local cluster (started if needed, stopped again if this script started it), with the
operator and the gateway as subprocesses: a ScaleToZero LLMDeployment sits at zero; a request
is sent through the gateway (held), the operator scales 0 -> 1 on the gateway's activation
annotation, KWOK marks the pod Ready after the modelled cold start (`llmscale.dev/startup-delay`),
the pod runner starts the emulator, and the gateway forwards the held request.

Figures per wake-up (ROUNDS of them, idle -> zero in between):
  answer          request sent -> response complete
  activation      request sent -> Deployment scaled to 1 (operator reaction)
  cold start      pod creation -> Ready (the modelled cold start, measured from pod conditions)
  overhead        answer - cold start: everything llmscale and the local runner add
Baseline in the same process: the same request sent straight to the Ready replica (no hold).
Target (issue 6): overhead < 1 s (p50). Exit 1 when it fails. Bounded: about 2 minutes warm.
`--smoke`: one wake-up, target not judged (benchmarks/benchkit.py). The cluster is the e2e
tier's (LLMSCALE_LOCALCLUSTER_ROOT / _PORT_OFFSET honoured).
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
import urllib.request
import uuid
from typing import Any

from benchkit import SMOKE, local_cluster, verdict

ROUNDS = 1 if SMOKE else 3
STARTUP_DELAY_SECONDS = 5.0
TARGET_OVERHEAD_SECONDS = 1.0
OVERRIDES = {"idle_window_seconds": 4.0, "scale_down_delay_seconds": 4.0, "cold_start_seconds": 5.0}


def post(url: str, model: str, timeout: float = 120.0) -> float:
    body = json.dumps(
        {"model": model, "prompt": "hi", "max_tokens": 4, "llmscale_prompt_tokens": 16}
    ).encode()
    request = urllib.request.Request(
        f"{url}/v1/completions", data=body, headers={"Content-Type": "application/json"}
    )
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
    return time.monotonic() - started


def wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def main() -> int:
    print("attaching to the local control plane (started when it is not running) ...", flush=True)
    with local_cluster() as cluster:
        return run(cluster)


def run(cluster: Any) -> int:
    from kubernetes import client, config

    from llmscale_tools.demo.stack import Stack, emulated_llmdeployment

    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    namespace = f"bench-wakeup-{uuid.uuid4().hex[:5]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    stack = Stack.on_local_cluster(cluster, namespace)
    rows: list[dict[str, float]] = []
    direct: list[float] = []
    try:
        stack.start_operator(interval_seconds=1.0)
        stack.start_gateway(hold_timeout_seconds=90.0)
        name = "wake"
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "llmscale.dev", "v1alpha1", namespace, "llmdeployments",
            emulated_llmdeployment(name, namespace, strategy="ScaleToZero",
                                   startup_delay=f"{STARTUP_DELAY_SECONDS:g}s", scaling_overrides=OVERRIDES),
        )  # fmt: skip

        def replicas() -> int:
            try:
                return int(apps.read_namespaced_deployment(name, namespace).spec.replicas or 0)
            except client.exceptions.ApiException:
                return -1

        for round_index in range(ROUNDS):
            wait(lambda: replicas() == 0, 90, "zero replicas")
            wait(lambda: not core.list_namespaced_pod(namespace).items, 90, "no pods left")
            sent_wall = time.time()
            sent = time.monotonic()
            scaled_at: list[float] = []

            def watch_scale(sent: float = sent, scaled_at: list[float] = scaled_at) -> None:
                wait(lambda: replicas() >= 1, 60, "scale to one")
                scaled_at.append(time.monotonic() - sent)

            watcher = threading.Thread(target=watch_scale)
            watcher.start()
            answer = post(stack.gateway_url, name)
            watcher.join(60)

            def ready_pod() -> Any:
                for pod in core.list_namespaced_pod(namespace).items:
                    for condition in pod.status.conditions or ():
                        if condition.type == "Ready" and condition.status == "True":
                            return pod, condition
                return None

            pod, ready = wait(ready_pod, 30, "a Ready pod")
            created = pod.metadata.creation_timestamp.timestamp()
            cold_start = ready.last_transition_time.timestamp() - created
            rows.append(
                {
                    "answer": answer,
                    "activation": scaled_at[0] if scaled_at else float("nan"),
                    "pod_created_after": created - sent_wall,
                    "cold_start": cold_start,
                    "overhead": answer - cold_start,
                }
            )
            ip = pod.status.pod_ip
            direct.append(post(f"http://{ip}:8000", name))
            print(
                f"wake-up {round_index + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in rows[-1].items()),
                flush=True,
            )
    finally:
        stack.stop_all()
        core.delete_namespace(namespace, propagation_policy="Background")
    overhead = statistics.median(r["overhead"] for r in rows)
    print(f"modelled cold start (startup-delay)   {STARTUP_DELAY_SECONDS:.1f} s")
    print(f"answer p50                           {statistics.median(r['answer'] for r in rows):.2f} s")
    print(f"activation p50 (sent -> scaled to 1) {statistics.median(r['activation'] for r in rows):.2f} s")
    print(f"measured cold start p50              {statistics.median(r['cold_start'] for r in rows):.2f} s")
    print(f"baseline: direct request, warm       {statistics.median(direct):.3f} s")
    print(f"overhead p50 (answer - cold start)   {overhead:.2f} s  (target < {TARGET_OVERHEAD_SECONDS:g} s)")
    missed = [] if overhead < TARGET_OVERHEAD_SECONDS else [f"overhead p50 {overhead:.2f} s"]
    return verdict(missed)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: 200 LLMDeployments created at once -> time until all are reconciled, operator peak RSS.

Runs `llmscale operator` (a subprocess, one namespace) against the local control plane (reused
when up, else started and stopped here). Baseline, same process: one LLMDeployment alone. Then
200 at once (16 client threads). "Reconciled" = status.observedGeneration is 1 and the Ready
condition is written (children applied). The LLMDeployments use strategy ScaleToZero, so the
figures measure the operator (reconcile, status, the scaling loop's bookkeeping), not the
scheduler placing 200 pods on 28 fake GPUs.

Targets (exit 1 when missed): all 200 reconciled within 90 s; operator peak RSS below 400 MiB.
Prints one JSON line at the end with every figure.
`--smoke`: 5 LLMDeployments, targets not judged, one not reconciled still fails (benchmarks/benchkit.py).
The cluster is the e2e tier's (LLMSCALE_LOCALCLUSTER_ROOT / _PORT_OFFSET honoured).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchkit import SMOKE, local_cluster, verdict

COUNT = 5 if SMOKE else 200
TARGET_ALL_RECONCILED_SECONDS = 90.0
TARGET_PEAK_RSS_MIB = 400.0
GROUP, VERSION, PLURAL = "llmscale.dev", "v1alpha1", "llmdeployments"


def manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct"},
            "engine": {"maxModelLen": 8192},
            "resources": {"gpu": {"product": "H100-80GB"}},
            "scaling": {"strategy": "ScaleToZero", "maxReplicas": 2},
        },
    }


def rss_mib(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reconciled_names(custom: Any, namespace: str) -> set[str]:
    items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]
    done = set()
    for item in items:
        status = item.get("status") or {}
        if status.get("observedGeneration") == 1 and any(
            c.get("type") == "Ready" for c in status.get("conditions") or ()
        ):
            done.add(item["metadata"]["name"])
    return done


def wait_reconciled(custom: Any, namespace: str, names: set[str], timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if names <= reconciled_names(custom, namespace):
            return time.monotonic() - start
        time.sleep(0.25)
    return None


def main() -> int:
    print("attaching to the local control plane (started when it is not running) ...", flush=True)
    with local_cluster() as cluster:
        return run(cluster)


def run(cluster: Any) -> int:
    from kubernetes import client, config

    from llmscale.api.crd import render_crd_yaml

    kubectl = [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}"]
    namespace = f"bench-reconcile-{uuid.uuid4().hex[:6]}"
    operator: subprocess.Popen[bytes] | None = None
    log_path = Path(f"/tmp/{namespace}-operator.log")
    try:
        subprocess.run(
            [
                *kubectl,
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=llmscale-bench",
                "-f",
                "-",
            ],
            input=render_crd_yaml().encode(),
            check=True,
            capture_output=True,
        )
        subprocess.run([*kubectl, "create", "namespace", namespace], check=True, capture_output=True)
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        api.configuration.connection_pool_maxsize = 32
        custom = client.CustomObjectsApi(api)

        port = free_port()
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        argv = [sys.executable, "-m", "llmscale", "operator", "--namespace", namespace]
        argv += ["--liveness", f"http://127.0.0.1:{port}/healthz", "--metrics-port", "0"]
        with log_path.open("wb") as log:
            operator = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or operator.poll() is not None:
                    print(f"FAIL: operator did not start; see {log_path}")
                    return 1
                time.sleep(0.3)
        time.sleep(2)
        idle_rss = rss_mib(operator.pid, "VmRSS")

        # Baseline: one LLMDeployment alone.
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest("baseline"))
        baseline = wait_reconciled(custom, namespace, {"baseline"}, 30)
        if baseline is None:
            print(f"FAIL: the baseline LLMDeployment was not reconciled within 30 s; see {log_path}")
            return 1

        names = {f"llm-{i:03d}" for i in range(COUNT)}
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(
                pool.map(
                    lambda n: custom.create_namespaced_custom_object(
                        GROUP, VERSION, namespace, PLURAL, manifest(n)
                    ),
                    sorted(names),
                )
            )
        created = time.monotonic() - start
        remaining = TARGET_ALL_RECONCILED_SECONDS * 2 - created
        waited = wait_reconciled(custom, namespace, names, remaining)
        total = None if waited is None else created + waited
        done = len(reconciled_names(custom, namespace) & names)
        peak_rss = rss_mib(operator.pid, "VmHWM")
        end_rss = rss_mib(operator.pid, "VmRSS")
    finally:
        if operator is not None and operator.poll() is None:
            operator.send_signal(signal.SIGTERM)
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
        subprocess.run([*kubectl, "delete", "namespace", namespace, "--wait=false"], capture_output=True)

    figures = {
        "count": COUNT,
        "baseline_one_seconds": round(baseline, 3),
        "create_calls_seconds": round(created, 3),
        "all_reconciled_seconds": None if total is None else round(total, 3),
        "reconciled": done,
        "per_object_ms": None if total is None else round(1000 * total / COUNT, 1),
        "speedup_vs_serial_baseline": None if total is None else round(COUNT * baseline / total, 1),
        "operator_idle_rss_mib": round(idle_rss, 1),
        "operator_peak_rss_mib": round(peak_rss, 1),
        "operator_end_rss_mib": round(end_rss, 1),
        "rss_per_object_kib": round(1024 * (end_rss - idle_rss) / COUNT, 1),
    }
    print(f"baseline: 1 LLMDeployment reconciled in {baseline:.2f} s")
    if total is not None:
        print(
            f"{COUNT} LLMDeployments created in {created:.1f} s, all reconciled after {total:.1f} s"
            f" ({1000 * total / COUNT:.0f} ms each; {COUNT * baseline / total:.1f}x faster than {COUNT}"
            " serial baselines)"
        )
    else:
        print(f"only {done}/{COUNT} reconciled within {TARGET_ALL_RECONCILED_SECONDS * 2:.0f} s")
    print(
        f"operator RSS: idle {idle_rss:.0f} MiB, peak {peak_rss:.0f} MiB, after {end_rss:.0f} MiB"
        f" ({figures['rss_per_object_kib']} KiB per LLMDeployment)"
    )
    print(json.dumps(figures))
    failed, broken = [], []
    if total is None:
        broken.append(f"only {done}/{COUNT} reconciled within {TARGET_ALL_RECONCILED_SECONDS * 2:.0f} s")
    elif total > TARGET_ALL_RECONCILED_SECONDS:
        failed.append(f"all reconciled within {TARGET_ALL_RECONCILED_SECONDS:.0f} s")
    if peak_rss > TARGET_PEAK_RSS_MIB:
        failed.append(f"peak RSS below {TARGET_PEAK_RSS_MIB:.0f} MiB")
    if not failed and not broken:
        print("PASS: targets met")
    return verdict(failed, broken)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:  # the shared control plane can go away under us: one line, not a traceback
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if not isinstance(exc, ApiException | HTTPError):
            raise
        print(f"FAIL bench_reconcile: the API server failed during the run: {exc!r}"[:400])
        sys.exit(1)

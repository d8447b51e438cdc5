"""The processes the demo and the autoscaling e2e tests run next to the local cluster.

`Stack` starts `llmscale operator` and `llmscale gateway` as subprocesses (scoped to one
namespace, so they never touch anything else on a shared cluster), registers the gateway with
Prometheus (a file_sd target under `.localcluster/prometheus/targets/gateway-<port>.json`, the
`llmscale-gateway` job of the local Prometheus config; the config is refreshed and Prometheus
reloaded when a cluster started before that job existed), and stops exactly what it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmscale.errors import EnvironmentSetupError

STOP_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), ""
    except (OSError, ValueError):
        return 0, ""


@dataclass
class Stack:
    kubeconfig: Path
    prometheus_url: str
    namespace: str
    log_dir: Path
    prometheus_dir: Path | None = None
    """`.localcluster/prometheus` of a LocalCluster (None: Prometheus is not ours to configure)."""
    apiserver_url: str | None = None
    layout: Any = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    gateway_port: int | None = None
    operator_metrics_port: int | None = None
    _target_file: Path | None = None

    @classmethod
    def on_local_cluster(cls, local: Any, namespace: str) -> Stack:
        """A stack wired to a running `LocalCluster`: its kubeconfig, Prometheus (whose gateway
        scrape job the stack maintains) and a log folder per namespace."""
        return cls(
            kubeconfig=local.kubeconfig,
            prometheus_url=local.prometheus_url,
            namespace=namespace,
            log_dir=local.state_dir / "logs" / namespace,
            prometheus_dir=local.layout.prometheus_dir,
            apiserver_url=local.apiserver_url,
            layout=local.layout,
        )

    def _env(self, extra: Mapping[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self._env(env), start_new_session=True
        )
        log.close()
        self.processes[name] = process
        return process

    def start_operator(
        self,
        *,
        interval_seconds: float = 2.0,
        overrides: Mapping[str, float] | None = None,
        extra_env: Mapping[str, str] | None = None,
        name: str = "operator",
    ) -> subprocess.Popen[bytes]:
        self.operator_metrics_port = free_port()
        if self.gateway_port is None:
            # chosen now so the operator reads the gateway's /metrics directly, as the chart
            # wires it (operator.readGatewayDirectly); until the gateway is up that read fails
            # and the operator uses Prometheus' gateway series alone
            self.gateway_port = free_port()
        env = {
            "LLMSCALE_PROMETHEUS_URL": self.prometheus_url,
            "LLMSCALE_GATEWAY_METRICS_URLS": self.gateway_url,
            "LLMSCALE_SCALING_INTERVAL": str(interval_seconds),
            "LLMSCALE_STATUS_INTERVAL": str(max(1.0, interval_seconds)),
            "LLMSCALE_RATE_WINDOW": "10",
            "LLMSCALE_OPERATOR_METRICS_PORT": str(self.operator_metrics_port),
            "LLMSCALE_SCALING_OVERRIDES": json.dumps(dict(overrides or {})),
            **dict(extra_env or {}),
        }
        argv = [sys.executable, "-m", "llmscale", "operator", "--namespace", self.namespace, "--install-crd"]
        process = self._spawn(name, argv, env)
        self._wait(
            name,
            lambda: http_get(f"http://127.0.0.1:{self.operator_metrics_port}/metrics")[0] == 200,
            60.0,
        )
        return process

    def start_gateway(
        self,
        *,
        hold_timeout_seconds: float = 120.0,
        queue_size: int = 200,
        api_key_namespace: str | None = None,
    ) -> int:
        """The gateway; with `api_key_namespace` it authenticates API keys from Secrets there."""
        port = self.gateway_port or free_port()
        if api_key_namespace is None:
            # the demo's gateway listens on loopback of a throwaway cluster: no API keys
            auth = ["--auth", "none"]
        else:
            auth = ["--auth", "api-key", "--api-key-namespace", api_key_namespace, "--api-key-refresh", "1"]
        argv = [
            sys.executable, "-m", "llmscale", "gateway",
            "--port", str(port),
            "--namespace", self.namespace,
            "--hold-timeout", str(hold_timeout_seconds),
            "--queue-size", str(queue_size),
            "--keepalive-interval", "2",
            "--activation-refresh", "1",
            "--log-level", "WARNING",
            *auth,
        ]  # fmt: skip
        self._spawn("gateway", argv, {})
        self.gateway_port = port
        self._wait("gateway", lambda: http_get(f"{self.gateway_url}/health")[0] == 200, 60.0)
        self.register_gateway_target()
        return port

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def register_gateway_target(self) -> None:
        if self.prometheus_dir is None or self.gateway_port is None:
            return
        config = self.prometheus_dir / "prometheus.yml"
        if self.layout is not None and self.apiserver_url and "llmscale-gateway" not in config.read_text():
            from llmscale_tools.localcluster.prometheus_config import write_prometheus_config

            write_prometheus_config(self.apiserver_url, self.layout)
            request = urllib.request.Request(f"{self.prometheus_url}/-/reload", method="POST")
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except OSError as exc:
                raise EnvironmentSetupError(
                    f"Prometheus at {self.prometheus_url} did not reload: {exc}"
                ) from exc
        targets = self.prometheus_dir / "targets"
        targets.mkdir(parents=True, exist_ok=True)
        self._target_file = targets / f"gateway-{self.gateway_port}.json"
        tmp = self._target_file.with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": [f"127.0.0.1:{self.gateway_port}"], "labels": {}}]))
        tmp.replace(self._target_file)

    def _wait(self, name: str, ready: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = self.processes[name]
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EnvironmentSetupError(
                    f"{name} exited with status {process.returncode}; see {self.log_dir / (name + '.log')}"
                )
            if ready():
                return
            time.sleep(0.2)
        raise EnvironmentSetupError(
            f"{name} not ready after {timeout:.0f}s; see {self.log_dir / (name + '.log')}"
        )

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def stop_all(self) -> None:
        for name in ("gateway", *[n for n in self.processes if n != "gateway"]):
            self.stop(name)
        if self._target_file is not None:
            self._target_file.unlink(missing_ok=True)
            self._target_file = None


def emulated_llmdeployment(
    name: str,
    namespace: str,
    *,
    strategy: str,
    gpu: str = "L4",
    max_replicas: int = 3,
    min_replicas: int | None = None,
    replicas: int | None = None,
    startup_delay: str = "2s",
    mode: str = "Active",
    ttft_p95: str = "2s",
    pod_annotations: Mapping[str, str] | None = None,
    scaling_overrides: Mapping[str, float] | None = None,
    runner: str = "emulator",
    extra_args: list[str] | None = None,
) -> dict[str, Any]:
    """An LLMDeployment whose pods the local pod runner serves with the vLLM emulator, or with
    real CPU vLLM (`runner="vllm"`: its start-up is vLLM's own, so no startup delay is added)."""
    scaling: dict[str, Any] = {"strategy": strategy, "maxReplicas": max_replicas, "mode": mode}
    scaling["slo"] = {"ttftP95": ttft_p95}
    if min_replicas is not None:
        scaling["minReplicas"] = min_replicas
    if replicas is not None:
        scaling["replicas"] = replicas
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if scaling_overrides:
        metadata["annotations"] = {"llmscale.dev/scaling-overrides": json.dumps(dict(scaling_overrides))}
    return {
        "apiVersion": "llmscale.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": metadata,
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": name},
            "engine": {"maxModelLen": 8192, **({"extraArgs": list(extra_args)} if extra_args else {})},
            "resources": {"gpu": {"product": gpu, "count": 1}},
            "scaling": scaling,
            "podLabels": {"llmscale.dev/runner": runner},
            "podAnnotations": {"llmscale.dev/startup-delay": startup_delay, **dict(pod_annotations or {})},
            "terminationGracePeriodSeconds": 30,
        },
    }

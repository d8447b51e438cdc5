"""The kind path (`make e2e-kind`, for laptops with Docker): real containers from our images.

NOT RUN ON THE CI MACHINES: they have no Docker engine, so this module skips unless
LLMSCALE_CLUSTER=kind (and then the `cluster` fixture itself skips when `docker info` fails).

`make e2e-kind` builds llmscale/operator:dev and llmscale/emulator:dev (`make image`) and runs
the e2e suite with LLMSCALE_CLUSTER=kind. Here, once per module: load both images into the
kind cluster that tests/e2e/conftest.py created, make its node look like an 8x H100 node
(GPU feature-discovery labels and an `nvidia.com/gpu` capacity, as the NVIDIA device plugin
would advertise), install the chart with the dev image, then check that the operator and the
gateway run as containers and that an LLMDeployment whose engine image is the emulator serves
a completion through the gateway. The chart is uninstalled at the end of the module so the
rest of the suite, which starts its own operator, never meets a second one.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_chart_support import CHART, helm_for

pytestmark = pytest.mark.skipif(
    os.environ.get("LLMSCALE_CLUSTER") != "kind",
    reason="kind path: needs Docker; run `make e2e-kind` on a machine with a container engine",
)

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
OPERATOR_IMAGE = os.environ.get("LLMSCALE_OPERATOR_IMAGE", "llmscale/operator:dev")
EMULATOR_IMAGE = os.environ.get("LLMSCALE_EMULATOR_IMAGE", "llmscale/emulator:dev")
KIND_CLUSTER_NAME = "llmscale-e2e"  # the name tests/e2e/conftest.py gives pytest-kind
RELEASE, RELEASE_NAMESPACE = "llmscale", "llmscale-system"


@pytest.fixture(scope="module")
def chart_on_kind(cluster: Any, kubectl: Kubectl) -> Iterator[None]:
    assert cluster.mode == "kind"
    from pytest_kind import KindCluster

    kind = KindCluster(KIND_CLUSTER_NAME)
    kind.create()  # reuses the conftest's cluster (same name)
    kind.ensure_kubectl()  # pytest-kind downloads kubectl lazily; the kubectl fixture uses it
    for image in (OPERATOR_IMAGE, EMULATOR_IMAGE):
        kind.load_docker_image(image)
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout.strip()
    kubectl(
        "label",
        "node",
        node,
        "--overwrite",
        "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3",
        "nvidia.com/gpu.memory=81559",
        "nvidia.com/gpu.count=8",
        "llmscale.dev/gpu-product=H100-80GB",
    )
    kubectl(
        "patch",
        "node",
        node,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"capacity": {"nvidia.com/gpu": "8"}}}),
    )
    repository, _, tag = OPERATOR_IMAGE.rpartition(":")
    helm = helm_for(cluster)
    helm.run(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--create-namespace",
        "--set",
        f"image.repository={repository}",
        "--set",
        f"image.tag={tag}",
        "--set",
        "image.pullPolicy=Never",
        "--wait",
        "--timeout",
        "180s",
    )
    try:
        yield
    finally:
        helm.run("uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE, "--wait", check=False)


@pytest.mark.timeout(600)
def test_operator_and_gateway_containers_run(chart_on_kind: None, kubectl: Kubectl) -> None:
    for component in ("operator", "gateway"):
        rollout = kubectl(
            "rollout",
            "status",
            f"deployment/{RELEASE}-{component}",
            "-n",
            RELEASE_NAMESPACE,
            "--timeout=120s",
            check=False,
        )
        assert rollout.returncode == 0, rollout.stderr


@pytest.mark.timeout(900)
def test_emulated_llmdeployment_serves_through_the_gateway(
    chart_on_kind: None, cluster: Any, kubectl: Kubectl, namespace: str, wait_for: Any
) -> None:
    manifest = {
        "apiVersion": "llmscale.dev/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": "tiny", "namespace": namespace},
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": "tiny"},
            "engine": {"image": EMULATOR_IMAGE},
            "resources": {"gpu": {"product": "H100-80GB", "count": 1}},
            "scaling": {"strategy": "Warm", "replicas": 1},
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def ready_replicas() -> int:
        out = kubectl(
            "get", "llmdeployment", "tiny", "-n", namespace, "-o", "jsonpath={.status.readyReplicas}"
        ).stdout
        return int(out or 0)

    wait_for(ready_replicas, 600, "LLMDeployment tiny to report a ready emulated replica", interval=2)

    from pytest_kind import KindCluster

    kind = KindCluster(KIND_CLUSTER_NAME)
    kind.create()
    with kind.port_forward(f"service/{RELEASE}-gateway", 80, "-n", RELEASE_NAMESPACE) as port:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions",
            data=json.dumps({"model": "tiny", "prompt": "Hello", "max_tokens": 8}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            body = json.load(response)
    assert body["choices"][0]["text"] != "" or body["usage"]["completion_tokens"] > 0

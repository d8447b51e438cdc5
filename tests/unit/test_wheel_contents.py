"""The operator/gateway wheel carries the product only: no test rig, no demo, no fakes.

Builds the llmscale wheel from this checkout (offline: setuptools' PEP 517 hook from the test
extra, no build isolation) and reads its file list and metadata. The operator image installs
exactly this wheel (images/operator.Dockerfile), so what is absent here is absent there.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("llmscale/localcluster/", "llmscale/demo/", "llmscale/emulator/", "llmscale_tools/")
FAKES = ("llmscale/metrics/fake.py", "llmscale/gateway/fake.py")


def build_wheel(source: Path, out: Path, pattern: str) -> zipfile.ZipFile:
    # the PEP 517 hook itself (pip is not in every venv: uv's have none)
    build = f"from setuptools import build_meta; build_meta.build_wheel({str(out)!r})"
    subprocess.run([sys.executable, "-c", build], cwd=source, check=True, capture_output=True, timeout=300)
    (built,) = out.glob(pattern)
    return zipfile.ZipFile(built)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return build_wheel(REPO, tmp_path_factory.mktemp("wheel"), "llmscale-*.whl")


def test_the_wheel_holds_the_product_and_nothing_of_the_tools(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    for part in ("llmscale/controller/handlers.py", "llmscale/scaling/core.py", "llmscale/gateway/proxy.py"):
        assert part in names
    assert not [n for n in names if n.startswith(TOOLS)], "tool code in the product wheel"
    assert not [n for n in names if n in FAKES], "test fakes in the product wheel"
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n or n.endswith((".go", ".mod"))]
    assert not [n for n in names if n.endswith((".lock", ".sum"))], "the vLLM lock or a go.sum"


def test_test_only_and_plot_dependencies_are_not_required(wheel: zipfile.ZipFile) -> None:
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [
        line.removeprefix("Requires-Dist: ")
        for line in wheel.read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist: ")
    ]
    hard = [r for r in requires if "extra ==" not in r]
    assert not [r for r in hard if r.lower().startswith(("cryptography", "matplotlib"))], hard
    assert any(r.startswith("matplotlib") and 'extra == "plot"' in r for r in requires)


def test_the_tools_wheel_carries_what_cluster_build_and_make_vllm_read(tmp_path: Path) -> None:
    # `cluster build` and `cluster vllm` must work from an installed llmscale-tools, not a checkout
    names = build_wheel(REPO / "tools", tmp_path, "llmscale_tools-*.whl").namelist()
    data = "llmscale_tools/localcluster/"
    for name in ("go.mod", "go.sum", "tools.go", "lws/go.mod", "lws/go.sum", "lws/tools.go"):
        assert f"{data}gomod/{name}" in names
    for name in ("requirements.lock", "tiny_model.py"):
        assert f"{data}vllm_engine/{name}" in names

"""Servers for the conformance suite: the emulator and real vLLM, each started once a session.

(The fixtures are re-exported by conftest.py; helpers are imported from this module by name.)

Both serve the model name `tiny` with a 1024-token context. The emulator emulates
Llama-3.1-8B on an H100 at speed-up 20 (fast answers; the API does not depend on timing). Real
vLLM is the CPU build from `make vllm` serving the tiny random-weight model, started by the
same code path a real-vLLM pod uses (llmscale_tools.localcluster.vllm_pod). Without that
environment the vLLM half skips and says why; `make test` builds it first, so there it runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmscale_tools.localcluster import vllm_env
from llmscale_tools.localcluster.vllm_pod import serve_argv, serve_env

SERVED = "tiny"
MAX_MODEL_LEN = 1024
# real vLLM: ~40 s to /health on 2 idle cores; minutes when the machine is busy
VLLM_START_TIMEOUT_SECONDS = float(os.environ.get("LLMSCALE_VLLM_START_TIMEOUT", "900"))


@dataclass(frozen=True)
class Server:
    kind: str  # "emulator" or "vllm"
    url: str  # http://127.0.0.1:PORT
    start_seconds: float
    log: Path

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float, log: Path) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise RuntimeError(f"server exited with {process.returncode}: {' | '.join(tail)}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url}/health not ready within {timeout:.0f} s; see {log}")


def _serve(kind: str, argv: list[str], env: dict[str, str], log: Path, timeout: float) -> Iterator[Server]:
    port = int(argv[argv.index("--port") + 1])
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        seconds = wait_healthy(url, process, timeout, log)
        yield Server(kind, url, seconds, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    argv = [
        sys.executable, "-m", "llmscale_tools.emulator",
        "--host", "127.0.0.1", "--port", str(free_port()),
        "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-80GB",
        "--served-model-name", SERVED, "--max-model-len", str(MAX_MODEL_LEN),
        "--speedup", "20",
    ]  # fmt: skip
    log = tmp_path_factory.mktemp("emulator") / "server.log"
    yield from _serve("emulator", argv, dict(os.environ), log, 60)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    environment = vllm_env.env_dir()
    if not vllm_env.is_ready(environment):
        pytest.skip(f"real vLLM half needs the vLLM CPU environment at {environment}: run `make vllm`")
    rendered = [
        "vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct",
        "--served-model-name", SERVED, "--port", str(free_port()),
        "--max-model-len", str(MAX_MODEL_LEN),
    ]  # fmt: skip
    argv = serve_argv(rendered, "127.0.0.1", vllm_env.python_of(environment), vllm_env.model_dir(environment))
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    yield from _serve("vllm", argv, serve_env(os.environ, "127.0.0.1"), log, VLLM_START_TIMEOUT_SECONDS)


@pytest.fixture(params=["emulator", "vllm"])
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(f"{request.param}_server")  # type: ignore[no-any-return]

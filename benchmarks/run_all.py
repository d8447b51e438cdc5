"""Run every benchmarks/bench_*.py, in full (`make bench`) or in smoke mode (`make bench-smoke`).

Usage: .venv/bin/python benchmarks/run_all.py [--smoke] [NAME ...]

The local control plane is attached once for the whole run (two benchmarks use it), so it
starts at most once; the last user stops it when this run started it (benchmarks/benchkit.py).
Each benchmark runs in its own process; the run exits 1 when one of them does, after all ran.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchkit import SMOKE_FLAG, local_cluster

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    smoke = SMOKE_FLAG in argv
    names = [a for a in argv if a != SMOKE_FLAG]
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        unknown = sorted(set(names) - {s.stem for s in scripts})
        if unknown:
            print(f"run_all: no benchmark named {', '.join(unknown)}", file=sys.stderr)
            return 2
        scripts = [s for s in scripts if s.stem in names]
    results: list[tuple[str, int, float]] = []
    with local_cluster():
        for script in scripts:
            print(f"== {script.name}{' (smoke)' if smoke else ''}", flush=True)
            started = time.monotonic()
            status = subprocess.call([sys.executable, str(script), *([SMOKE_FLAG] if smoke else [])])
            results.append((script.stem, status, time.monotonic() - started))
    print("\n== summary")
    for name, status, seconds in results:
        print(f"  {name:<18} {'ok' if status == 0 else f'FAILED (exit {status})':<16} {seconds:6.1f} s")
    return 1 if any(status for _, status, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

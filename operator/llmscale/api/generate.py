"""`python -m llmscale.api.generate [--check] [--output DIR]`: write or verify crds/."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from llmscale.api.crd import CRD_FILENAME, render_crd_yaml

# operator/llmscale/api/generate.py -> repository root
DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parents[3] / "crds"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmscale.api.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail (exit 1) when the file is stale")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT_DIR, help="CRD directory")
    args = parser.parse_args(argv)
    path: Path = args.output / CRD_FILENAME
    wanted = render_crd_yaml()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != wanted:
            state = "missing" if current is None else "stale"
            print(f"{path} is {state}: run `make generate`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    args.output.mkdir(parents=True, exist_ok=True)
    path.write_text(wanted, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

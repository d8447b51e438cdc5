"""`python -m llmscale.bench [flags]`: the same as `llmscale bench [flags]`.

Runs without the top-level dispatcher (so it does not import the other commands).
"""

from __future__ import annotations

import argparse
import sys

from llmscale.bench import cli
from llmscale.errors import LLMScaleError, UserInputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmscale.bench")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except UserInputError as exc:
        print(f"llmscale bench: error: {exc}", file=sys.stderr)
        return 2
    except LLMScaleError as exc:
        print(f"llmscale bench: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

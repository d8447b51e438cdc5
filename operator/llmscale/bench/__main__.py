"""`python -m llmscale.bench [flags]`: `llmscale bench [flags]` without loading the other commands."""

from __future__ import annotations

import sys

from llmscale.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]], commands=(("bench", "llmscale.bench.cli"),)))

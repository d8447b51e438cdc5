"""`python -m llmscale.emulator [flags]`: `llmscale emulate [flags]` without loading the other commands."""

from __future__ import annotations

import sys

from llmscale.cli import main

if __name__ == "__main__":
    sys.exit(main(["emulate", *sys.argv[1:]], commands=(("emulate", "llmscale.emulator.cli"),)))

"""`python -m llmscale_tools.emulator [flags]`: `llmscale emulate [flags]`, no other command loaded."""

from __future__ import annotations

import sys

from llmscale.cli import main

if __name__ == "__main__":
    sys.exit(main(["emulate", *sys.argv[1:]], commands=(("emulate", "llmscale_tools.emulator.cli"),)))

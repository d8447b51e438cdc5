#!/opt/llmscale/bin/python
"""`vllm` inside the emulator image: run `llmscale emulate` on the given vLLM command line.

The operator starts vLLM pods as `vllm serve MODEL --host 0.0.0.0 --port 8000 ...`. This shim
passes that command line to the emulator the same way the local pod runner does
(LLMSCALE_POD_ARGS), and binds all interfaces of the container (LLMSCALE_POD_IP).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("LLMSCALE_POD_IP", "0.0.0.0")  # a container binds its own IP
os.environ["LLMSCALE_POD_ARGS"] = json.dumps(["vllm", *sys.argv[1:]])
os.execv(sys.executable, [sys.executable, "-m", "llmscale_tools.emulator", "--pod-env"])

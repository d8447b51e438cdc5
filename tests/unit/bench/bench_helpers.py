"""An emulator on 127.0.0.1 in a background thread, for tests that drive `llmscale bench`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from llmscale_tools.emulator.app import RunningEmulator, start_emulator
from llmscale_tools.emulator.config import EmulatorConfig


@contextmanager
def emulator_thread(config: EmulatorConfig) -> Iterator[str]:
    """Yields the emulator's URL; the server runs in its own event loop and thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, RunningEmulator] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        holder["emulator"] = loop.run_until_complete(start_emulator(config))
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="emulator", daemon=True)
    thread.start()
    try:
        assert ready.wait(timeout=30), "emulator did not start"
        yield holder["emulator"].url
    finally:
        if "emulator" in holder:
            stop = asyncio.run_coroutine_threadsafe(
                holder["emulator"].drain_and_stop(timeout_seconds=1.0), loop
            )
            stop.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

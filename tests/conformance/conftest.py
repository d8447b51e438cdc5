"""Fixtures of the conformance suite (defined in conformance_servers.py)."""

from conformance_servers import emulator_server, server, vllm_server

__all__ = ["emulator_server", "server", "vllm_server"]

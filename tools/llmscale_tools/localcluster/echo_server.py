"""A tiny HTTP server for the pod runner's `http-echo` rule (foundation tests).

Binds LLMSCALE_POD_IP on LLMSCALE_ECHO_PORT, else LLMSCALE_POD_PORT (set by the pod runner),
else 8000. GET / answers JSON
naming the pod; GET /metrics answers Prometheus text with a gauge and a request counter.
Exits cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

DEFAULT_PORT = 8000


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests_total = 0


def make_handler(state: _State, identity: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests_total += 1
                requests_total = state.requests_total
            if self.path == "/metrics":
                body = (
                    "# HELP llmscale_echo_up 1 while the echo server runs.\n"
                    "# TYPE llmscale_echo_up gauge\n"
                    "llmscale_echo_up 1\n"
                    "# HELP llmscale_echo_requests_total Requests answered.\n"
                    "# TYPE llmscale_echo_requests_total counter\n"
                    f"llmscale_echo_requests_total {requests_total}\n"
                ).encode()
                content_type = "text/plain; version=0.0.4"
            elif self.path in ("/", "/healthz"):
                body = json.dumps({**identity, "path": self.path}).encode()
                content_type = "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per scrape each second would drown the pod log

    return Handler


def main() -> int:
    host = os.environ.get("LLMSCALE_POD_IP", "127.0.0.1")
    port = int(os.environ.get("LLMSCALE_ECHO_PORT") or os.environ.get("LLMSCALE_POD_PORT") or DEFAULT_PORT)
    identity = {
        "pod": os.environ.get("LLMSCALE_POD_NAME", ""),
        "namespace": os.environ.get("LLMSCALE_POD_NAMESPACE", ""),
        "ip": host,
    }
    server = ThreadingHTTPServer((host, port), make_handler(_State(), identity))
    server.daemon_threads = True

    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"http-echo listening on {host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    print("http-echo stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

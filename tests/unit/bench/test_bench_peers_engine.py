"""bench_peers' engine-referenced figures: the engine's mean over one tool's requests.

The figures are hand-computed from the /metrics texts below (two engines, so the sum over labels
is checked), served on loopback by a throwaway HTTP server.
"""

from __future__ import annotations

import http.server
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
import bench_peers


def _exposition(ttft: tuple[tuple[float, float], ...], e2e_count: float) -> str:
    lines = [
        "# HELP vllm:time_to_first_token_seconds TTFT.",
        "# TYPE vllm:time_to_first_token_seconds histogram",
    ]
    for engine, (total, count) in enumerate(ttft):
        labels = f'engine="{engine}",model_name="m"'
        lines += [
            f'vllm:time_to_first_token_seconds_bucket{{{labels},le="+Inf"}} {count}',
            f"vllm:time_to_first_token_seconds_sum{{{labels}}} {total}",
            f"vllm:time_to_first_token_seconds_count{{{labels}}} {count}",
        ]
    lines += [
        "# HELP vllm:e2e_request_latency_seconds e2e.",
        "# TYPE vllm:e2e_request_latency_seconds histogram",
        f'vllm:e2e_request_latency_seconds_bucket{{le="+Inf"}} {e2e_count}',
        f"vllm:e2e_request_latency_seconds_sum {e2e_count * 2.0}",
        f"vllm:e2e_request_latency_seconds_count {e2e_count}",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, list[str]]]:
    pages: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages[0].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", pages
    finally:
        server.shutdown()
        server.server_close()


def test_engine_means_cover_exactly_the_requests_between_two_reads(
    metrics_server: tuple[str, list[str]],
) -> None:
    url, pages = metrics_server
    # before: engine 0 has served 10 requests (TTFT sum 1.0 s), engine 1 4 (0.4 s)
    pages[:] = [_exposition(((1.0, 10.0), (0.4, 4.0)), e2e_count=14.0)]
    before = bench_peers.server_totals(url)
    # after one tool's run: engine 0 +6 requests totalling 1.2 s, engine 1 +2 totalling 0.6 s
    pages[:] = [_exposition(((2.2, 16.0), (1.0, 6.0)), e2e_count=22.0)]
    means = bench_peers.server_means(before, bench_peers.server_totals(url))
    # (1.2 + 0.6) s over 8 requests = 225 ms; e2e: every request took 2 s
    assert means["server_ttft"] == pytest.approx(225.0)
    assert means["server_e2e"] == pytest.approx(2000.0)
    # families the server does not export have no mean (not zero)
    assert means["server_itl"] is None
    assert means["server_tpot"] is None


def test_a_tool_is_compared_with_the_engine_over_its_own_requests() -> None:
    # the tool read a 240 ms mean TTFT where the engine saw 225 ms: 240 / 225
    figures: bench_peers.Figures = {
        "ttft_mean": 240.0,
        "server_ttft": 225.0,
        "itl_mean": None,
        "server_itl": 9.0,
    }
    assert bench_peers.engine_ratio(figures, "ttft") == pytest.approx(240.0 / 225.0)
    assert bench_peers.engine_ratio(figures, "itl") is None
    assert bench_peers.engine_ratio({"e2e_mean": 1.0, "server_e2e": 0.0}, "e2e") is None

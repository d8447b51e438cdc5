"""`llmscale demo`: flag validation (one line, exit 2) and the trace slice, without a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmscale.cli import main
from llmscale_tools.demo.workload import build_schedule

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared"


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--speedup", "0"], "--speedup"),
        (["--speedup", "nan"], "--speedup"),
        (["--duration", "5"], "--duration"),
        (["--strategy", "Sometimes"], "--strategy"),
        (["--plot", "out.jpg"], "--plot"),
        (["--trace", "/nonexistent/trace.csv"], "--trace"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0], err


def test_schedule_from_a_generic_trace_is_compressed_and_thinned(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    rows = ["timestamp,input_tokens,output_tokens"]
    # 10 req/s for 100 s, a 200 s gap, 10 req/s for 100 s
    rows += [f"{i / 10:.1f},100,10" for i in range(1000)]
    rows += [f"{300 + i / 10:.1f},9000,900" for i in range(1000)]
    trace.write_text("\n".join(rows) + "\n")
    schedule = build_schedule(trace, duration_seconds=100, speedup=4, target_mean_rps=2.0)
    assert schedule.arrival_seconds == sorted(schedule.arrival_seconds)
    assert schedule.arrival_seconds[0] >= 0 and schedule.arrival_seconds[-1] < 100
    assert len(schedule) <= 2.0 * 100 * 1.2
    assert max(schedule.input_tokens) <= 7000 and max(schedule.output_tokens) <= 512


@pytest.mark.skipif(not (SHARED / "traces").is_dir(), reason="shared traces not present")
def test_default_trace_slice_has_bursts_and_a_gap() -> None:
    schedule = build_schedule(
        SHARED / "traces" / "AzureLLMInferenceTrace_code.csv", duration_seconds=240, speedup=4
    )
    gaps = [b - a for a, b in zip(schedule.arrival_seconds, schedule.arrival_seconds[1:], strict=False)]
    assert max(gaps) >= 25  # long enough for the demo's 20 s idle window
    assert 100 < len(schedule) < 1000


def test_always_on_reference_uses_the_engines_own_replica_ceiling() -> None:
    from llmscale_tools.demo.session import Demo, DemoOptions, Run

    # two ticks 3600 s apart: "always on at max" is maxReplicas GPU-hours, 2 on real vLLM, 4 emulated
    run = Run(timeline=[{"t": 0.0, "replicas": 1}, {"t": 3600.0, "replicas": 1}])
    for engine, expected in (("vllm", 2.0), ("emulator", 4.0)):
        options = DemoOptions(Path("t.csv"), 4.0, 90.0, "ScaleToZero", Path("p.png"), False, True, engine)
        summary = Demo(options)._summary(run, _FakeSchedule(), None, {}, "ns")  # type: ignore[arg-type]
        assert summary["gpu_hours_always_on_at_max"] == expected
        assert summary["gpu_hours"] == 1.0


class _FakeSchedule:
    def to_json_dict(self) -> dict[str, object]:
        return {}


def test_real_engine_prompt_cap_fits_the_tiny_models_context() -> None:
    from llmscale_tools.demo.session import VLLM_MAX_OUTPUT_TOKENS, VLLM_MAX_PROMPT_TOKENS

    # measured: prompt_text(768, id) is 769 tokens of the tiny model's BPE for every one of 2000
    # ids (one token per word after a space; BOS and a first word of up to 2 tokens); prompt +
    # output must stay within its 1024-token context
    assert VLLM_MAX_PROMPT_TOKENS + 2 + VLLM_MAX_OUTPUT_TOKENS <= 1024

import pytest

from llmscale.cli import main


def test_version_prints_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "llmscale 0.1.0" in capsys.readouterr().out


def test_unknown_command_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice: 'no-such-command'" in capsys.readouterr().err


def test_a_broken_command_module_leaves_the_others_working(capsys: pytest.CaptureFixture[str]) -> None:
    commands = (("plan", "llmscale.planner.cli"), ("broken", "llmscale.no_such_module"))
    assert main(["broken", "--anything"], commands=commands) == 1
    assert "loading llmscale.no_such_module failed" in capsys.readouterr().err
    assert main(["plan", "--model", "llama-3-8b", "--gpu", "H100-80GB", "--json"], commands=commands) == 0
    assert '"fits": true' in capsys.readouterr().out

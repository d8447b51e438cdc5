"""The `llmscale` command line.

Each command lives with the code it drives, in a module `llmscale.<area>.cli` that
exposes `register(subparsers)`; registering adds a sub-parser whose default `func`
runs the command and returns an exit status. Those modules keep their top-level
imports light so that `llmscale --help` stays fast; heavy imports happen in `run`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from llmscale import __version__
from llmscale.errors import LLMScaleError, UserInputError

# command name -> module that registers it (order = order in --help)
PRODUCT_COMMANDS: tuple[tuple[str, str], ...] = (
    ("operator", "llmscale.controller.cli"),
    ("gateway", "llmscale.gateway.cli"),
    ("plan", "llmscale.planner.cli"),
    ("simulate", "llmscale.sim.cli"),
    ("backtest", "llmscale.sim.backtest.cli"),
    ("bench", "llmscale.bench.cli"),
)
PLUGIN_GROUP = "llmscale.commands"
"""Entry-point group of further commands: the llmscale-tools distribution (tools/) adds `emulate`,
`demo` and `cluster` there, so they exist where the tools are installed (a checkout after
`make setup`, the emulator image) and not in the operator image."""


def installed_commands() -> tuple[tuple[str, str], ...]:
    """The product's commands, then those that installed plugins register."""
    from importlib.metadata import entry_points

    plugins = tuple((ep.name, ep.value) for ep in entry_points(group=PLUGIN_GROUP))
    return PRODUCT_COMMANDS + tuple(sorted(plugins))


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as one line and exit status 2 (its default)."""


def build_parser(commands: Sequence[tuple[str, str]] | None = None) -> argparse.ArgumentParser:
    parser = _Parser(
        prog="llmscale",
        description="Serve LLMs on Kubernetes at the lowest GPU cost that meets a latency SLO.",
    )
    parser.add_argument("--version", action="version", version=f"llmscale {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module_name in installed_commands() if commands is None else commands:
        try:
            importlib.import_module(module_name).register(subparsers)
        except Exception as exc:  # one broken command must not take the others down
            _register_broken(subparsers, name, module_name, exc)
    return parser


def _register_broken(
    subparsers: Any,
    name: str,
    module_name: str,
    error: Exception,
) -> None:
    """Keep a command whose module fails to load visible, failing with the reason when used."""
    reason = f"{type(error).__name__}: {error}"

    def run(_args: argparse.Namespace) -> int:
        raise LLMScaleError(f"this command is unavailable: loading {module_name} failed ({reason})")

    # no option prefix: every argument lands in `rest`, so the user sees the real reason
    parser = subparsers.add_parser(name, help=f"(unavailable: {reason})", add_help=False, prefix_chars="\0")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None, *, commands: Sequence[tuple[str, str]] | None = None) -> int:
    """Run one command line; `commands` narrows the dispatcher (`python -m llmscale_tools.emulator`
    loads only the emulator, so a process per pod starts fast and depends on nothing else)."""
    parser = build_parser(commands)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        status = args.func(args)
    except UserInputError as exc:
        print(f"llmscale {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except LLMScaleError as exc:
        print(f"llmscale {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"llmscale {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

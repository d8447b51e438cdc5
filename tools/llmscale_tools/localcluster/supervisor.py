"""Start, check and stop the cluster's processes: pid files and process groups.

Each process is a session leader (its own process group), so stopping it also stops anything
it forked. The pid file records the executable too, so a pid the kernel has since recycled for
an unrelated program is never signalled.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from llmscale.errors import EnvironmentSetupError
from llmscale_tools.localcluster.layout import StateLayout

LOG_TAIL_LINES = 15
# Popen handles of children started by this interpreter: waiting on them reaps zombies, which
# would otherwise look alive to `kill(pid, 0)` until this process exits.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


@atexit.register
def _detach_children() -> None:
    """Components are daemons that outlive the interpreter that started them (`cluster up`
    returns, a pytest session reuses them). Marking the Popen handles as settled stops
    Python from warning that a subprocess is still running when it exits."""
    for child in _CHILDREN.values():
        if child.poll() is None:
            child.returncode = 0
    _CHILDREN.clear()


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file, for error messages ('' when there is none)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def start(
    layout: StateLayout, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` detached (own session, stdin /dev/null), logging to logs/<name>.log."""
    layout.logs_dir.mkdir(parents=True, exist_ok=True)
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    log_path = layout.log_file(name)
    with log_path.open("ab") as log:
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=layout.directory,
                env=dict(env) if env is not None else None,
                start_new_session=True,
            )
        except OSError as exc:
            raise EnvironmentSetupError(f"cannot start {name} ({argv[0]}): {exc.strerror}") from exc
    _CHILDREN[process.pid] = process
    layout.pid_file(name).write_text(f"{process.pid}\n{argv[0]}\n")
    return process


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def _alive(pid: int, executable: str) -> bool:
    _reap(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rsplit(b")", 1)[1].split()[0]
        if state in (b"Z", b"X"):
            return False
        exe = os.readlink(f"/proc/{pid}/exe")
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return False
    # a rebuilt binary shows as "<path> (deleted)"
    return (
        exe.removesuffix(" (deleted)") == os.path.realpath(executable)
        or Path(exe).name == Path(executable).name
    )


def running_pid(layout: StateLayout, name: str) -> int | None:
    """The pid of component `name` when its pid file points at a live process of that program."""
    try:
        pid_text, executable = layout.pid_file(name).read_text().splitlines()[:2]
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid, executable) else None


def find_process(executable: Path, argument: str) -> int | None:
    """A live process of `executable` whose command line contains `argument`, if any."""
    with os.scandir("/proc") as entries:
        pids = [int(entry.name) for entry in entries if entry.name.isdigit()]
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if argument.encode() in argv and _alive(pid, str(executable)):
            return pid
    return None


def stop(layout: StateLayout, name: str, *, grace_seconds: float = 10.0) -> bool:
    """SIGTERM the component's process group, SIGKILL after the grace period. True if it ran."""
    return bool(stop_many(layout, [name], grace_seconds=grace_seconds))


def stop_many(layout: StateLayout, names: Sequence[str], *, grace_seconds: float = 10.0) -> list[str]:
    """Stop several components at once (in parallel: shutdown grace periods do not add up).

    Signals go in the given order; returns the names that were running.
    """
    groups: dict[str, int] = {}
    for name in names:
        pid = running_pid(layout, name)
        layout.pid_file(name).unlink(missing_ok=True)
        if pid is not None:
            groups[name] = pid
            _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    remaining = dict(groups)
    while remaining and time.monotonic() < deadline:
        remaining = {name: pid for name, pid in remaining.items() if _group_alive(pid)}
        if remaining:
            time.sleep(0.05)
    for pid in remaining.values():
        _signal_group(pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 2.0
    while remaining and time.monotonic() < kill_deadline:
        remaining = {name: pid for name, pid in remaining.items() if _group_alive(pid)}
        time.sleep(0.02)
    for pid in groups.values():
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
    return list(groups)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _group_alive(pgid: int) -> bool:
    """True while any non-zombie process of process group `pgid` exists."""
    _reap(pgid)
    with os.scandir("/proc") as entries:
        pids = [entry.name for entry in entries if entry.name.isdigit()]
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        # fields[0] is the state, fields[2] the process group id
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def wait_until_ready(
    layout: StateLayout,
    name: str,
    process: subprocess.Popen[bytes],
    is_ready: Callable[[], bool],
    *,
    timeout_seconds: float,
    poll_seconds: float = 0.1,
) -> float:
    """Poll `is_ready` until true; raise with the log tail if the process dies or time runs out.

    Returns how long it took, in seconds.
    """
    started = time.monotonic()
    deadline = started + timeout_seconds
    while True:
        if process.poll() is not None:
            raise EnvironmentSetupError(
                f"{name} exited with status {process.returncode} during start-up; "
                f"last lines of {layout.log_file(name)}:\n{log_tail(layout.log_file(name))}"
            )
        try:
            if is_ready():
                return time.monotonic() - started
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise EnvironmentSetupError(
                f"{name} was not ready within {timeout_seconds:.0f} s; "
                f"last lines of {layout.log_file(name)}:\n{log_tail(layout.log_file(name))}"
            )
        time.sleep(poll_seconds)

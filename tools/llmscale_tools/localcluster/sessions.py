"""Which processes (test sessions, the demo) are using the local cluster right now.

Several pytest sessions on one checkout share one cluster. Each registers its pid while it
uses the cluster; a cluster that a session started (not one started by hand with
`llmscale cluster up`) is stopped by the last session to leave, never under another one.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmscale_tools.localcluster.layout import StateLayout

_AUTO_STARTED = "started-by-session"


def _users_dir(layout: StateLayout) -> Path:
    return layout.run_dir / "users"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def register(layout: StateLayout, pid: int) -> None:
    _users_dir(layout).mkdir(parents=True, exist_ok=True)
    (_users_dir(layout) / str(pid)).touch()


def unregister(layout: StateLayout, pid: int) -> None:
    (_users_dir(layout) / str(pid)).unlink(missing_ok=True)


def live_users(layout: StateLayout) -> list[int]:
    """Registered pids that still run (entries of crashed sessions are removed)."""
    directory = _users_dir(layout)
    if not directory.is_dir():
        return []
    alive = []
    for entry in directory.iterdir():
        if not entry.name.isdigit():
            continue
        if _pid_alive(int(entry.name)):
            alive.append(int(entry.name))
        else:
            entry.unlink(missing_ok=True)
    return sorted(alive)


def mark_auto_started(layout: StateLayout) -> None:
    layout.run_dir.mkdir(parents=True, exist_ok=True)
    (layout.run_dir / _AUTO_STARTED).touch()


def auto_started(layout: StateLayout) -> bool:
    return (layout.run_dir / _AUTO_STARTED).exists()

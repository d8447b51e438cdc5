from __future__ import annotations

import sys
from pathlib import Path

import pytest

from llmscale.errors import EnvironmentSetupError
from llmscale_tools.localcluster import LocalCluster, sessions, supervisor
from llmscale_tools.localcluster.layout import StateLayout

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_start_records_pid_and_stop_kills_the_whole_group(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    # the parent forks a grandchild: stopping must take both (process group)
    parent = [
        sys.executable,
        "-c",
        "import subprocess,sys,time; "
        "subprocess.Popen([sys.executable,'-c','import time; time.sleep(60)']); time.sleep(60)",
    ]
    process = supervisor.start(layout, "sleeper", parent)
    assert supervisor.running_pid(layout, "sleeper") == process.pid
    assert supervisor.stop(layout, "sleeper", grace_seconds=5)
    assert process.poll() is not None
    assert not supervisor._group_alive(process.pid)
    assert supervisor.running_pid(layout, "sleeper") is None
    assert not supervisor.stop(layout, "sleeper")


def test_a_recycled_pid_of_another_program_is_not_ours(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    layout.run_dir.mkdir(parents=True)
    # pid 1 exists but is not /usr/bin/etcd
    layout.pid_file("etcd").write_text("1\n/usr/bin/etcd-that-does-not-exist\n")
    assert supervisor.running_pid(layout, "etcd") is None


def test_a_component_that_dies_during_start_up_reports_its_log_tail(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    process = supervisor.start(
        layout, "broken", ["sh", "-c", "echo 'flag provided but not defined: -x'; exit 3"]
    )
    with pytest.raises(EnvironmentSetupError) as exc:
        supervisor.wait_until_ready(layout, "broken", process, lambda: False, timeout_seconds=10)
    assert "broken exited with status 3" in str(exc.value)
    assert "flag provided but not defined" in str(exc.value)


def test_a_component_that_never_gets_ready_times_out(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    process = supervisor.start(layout, "slow", SLEEPER)
    try:
        with pytest.raises(EnvironmentSetupError, match="slow was not ready within 0 s"):
            supervisor.wait_until_ready(layout, "slow", process, lambda: False, timeout_seconds=0.3)
    finally:
        supervisor.stop(layout, "slow", grace_seconds=2)


def test_down_also_stops_components_an_older_version_left_behind(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    process = supervisor.start(cluster.layout, "retired-helper", SLEEPER)
    assert cluster.down() == ["retired-helper"]
    assert process.poll() is not None
    assert not cluster.layout.run_dir.joinpath("retired-helper.pid").exists()
    assert all(not s.running for s in cluster.status())


def test_session_users_are_counted_and_dead_ones_pruned(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path)
    process = supervisor.start(layout, "user", SLEEPER)
    sessions.register(layout, process.pid)
    sessions.register(layout, 2**22 + 12345)  # no such pid (above the kernel's pid_max default)
    assert sessions.live_users(layout) == [process.pid]
    assert not sessions.auto_started(layout)
    sessions.mark_auto_started(layout)
    assert sessions.auto_started(layout)
    sessions.unregister(layout, process.pid)
    assert sessions.live_users(layout) == []
    supervisor.stop(layout, "user", grace_seconds=2)


def test_detach_stops_only_an_auto_started_cluster_with_no_users_left(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path)
    sleeper = supervisor.start(cluster.layout, "retired-helper", SLEEPER)  # stands in for a component
    sessions.register(cluster.layout, 111111)  # a dead user does not hold it
    assert not cluster.detach(pid=222222)  # started by hand (no marker): left running
    assert sleeper.poll() is None
    sessions.mark_auto_started(cluster.layout)
    assert cluster.detach(pid=222222)
    assert sleeper.poll() is not None

"""Where the local cluster keeps its state: everything under one `.localcluster/` directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from llmscale_tools.localcluster.pki import PKIPaths

STATE_DIR_NAME = ".localcluster"


@dataclasses.dataclass(frozen=True)
class StateLayout:
    """Paths inside the state directory. `cluster down` removes all but `bin/`."""

    directory: Path

    @property
    def bin_dir(self) -> Path:
        return self.directory / "bin"

    @property
    def pki(self) -> PKIPaths:
        return PKIPaths(self.directory / "pki")

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def etcd_data(self) -> Path:
        return self.directory / "etcd"

    @property
    def logs_dir(self) -> Path:
        return self.directory / "logs"

    @property
    def run_dir(self) -> Path:
        return self.directory / "run"

    @property
    def kwok_dir(self) -> Path:
        return self.directory / "kwok"

    @property
    def prometheus_dir(self) -> Path:
        return self.directory / "prometheus"

    @property
    def pods_dir(self) -> Path:
        """One log file per pod the pod runner started a process for."""
        return self.directory / "pods"

    @property
    def lock_file(self) -> Path:
        """Held while `up` or `down` runs (never deleted: other processes may wait on it)."""
        return self.directory / ".lock"

    def log_file(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    def pid_file(self, component: str) -> Path:
        return self.run_dir / f"{component}.pid"

    def work_dir(self, component: str) -> Path:
        """Scratch directory of a component (serving certificates it generates itself)."""
        return self.directory / "work" / component

    def state_entries(self) -> list[Path]:
        """What `down` deletes: everything except the binaries, the lock file and the
        credentials (pki/ and kubeconfig, reused by the next `up`; delete pki/ to rotate)."""
        if not self.directory.exists():
            return []
        return [p for p in self.directory.iterdir() if p.name not in ("bin", ".lock", "pki", "kubeconfig")]

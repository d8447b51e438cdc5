"""`llmscale cluster build`: build or reuse the control-plane binaries, KWOK and Helm.

Kubernetes commands and etcd are built from the wrapper module in localcluster/gomod/ (its
go.mod pins every version); KWOK and Helm are `go install`ed in their own module graphs,
because sharing the wrapper's graph would drag their newer dependencies into the Kubernetes
build. Binaries are cached per component and version under ~/.cache/llmscale/bin/ so a warm
machine skips the build, then linked into .localcluster/bin/.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from llmscale.errors import EnvironmentSetupError
from llmscale_tools.localcluster import versions
from llmscale_tools.localcluster.build_progress import BuildProgress
from llmscale_tools.localcluster.supervisor import log_tail

BUILD_TIMEOUT_SECONDS = 3600.0
# Messages go through this so the CLI can print progress and tests can collect it.
Reporter = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class Component:
    """A cache entry: binaries built together at one version."""

    name: str
    version: str
    binaries: tuple[str, ...]
    files: tuple[str, ...] = ()  # data kept with the binaries (e.g. the CRD of that version)

    def cache_dir(self, cache_root: Path) -> Path:
        return cache_root / f"{self.name}-{self.version}"


KUBERNETES = Component("kubernetes", versions.KUBERNETES_VERSION, versions.KUBERNETES_COMMANDS)
ETCD = Component("etcd", versions.ETCD_VERSION, ("etcd",))
KWOK = Component("kwok", versions.KWOK_VERSION, ("kwok",))
HELM = Component("helm", versions.HELM_VERSION, ("helm",))
LWS = Component("lws", versions.LWS_VERSION, ("lws",), files=(versions.LWS_CRD_FILE,))
ALL_COMPONENTS = (KUBERNETES, ETCD, KWOK, HELM, LWS)


def cache_root() -> Path:
    """~/.cache/llmscale/bin (honours LLMSCALE_CACHE_DIR and XDG_CACHE_HOME)."""
    explicit = os.environ.get("LLMSCALE_CACHE_DIR")
    if explicit:
        return Path(explicit) / "bin"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmscale" / "bin"


def find_go() -> Path:
    """The `go` command, or EnvironmentSetupError saying how to get one."""
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None
    )
    if found is None:
        raise EnvironmentSetupError(
            "the Go toolchain (`go`, 1.24 or newer) is not on PATH; install it (e.g. into /usr/local/go) "
            "and retry `llmscale cluster build`"
        )
    return Path(found)


def version_ldflags(version: str) -> str:
    """-X flags that stamp the Kubernetes version into server and client (kubectl version)."""
    major, minor = version.removeprefix("v").split(".")[:2]
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={version}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


def go_environment(go: Path, *, sumdb_off: bool = False, wrapper: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"
    env["PATH"] = f"{go.parent}{os.pathsep}{env.get('PATH', '')}"
    # In the wrapper module go.mod/go.sum are authoritative; -mod=mod lets go fill in nothing new
    # beyond what go.sum already verifies. go install pkg@version resolves its own graph.
    env["GOFLAGS"] = "-mod=mod -buildvcs=false" if wrapper else "-buildvcs=false"
    if sumdb_off:
        env["GOSUMDB"] = "off"
    return env


def _looks_like_sumdb_failure(log_text: str) -> bool:
    return "checksum database" in log_text or "verifying module" in log_text


def run_go(
    args: list[str],
    *,
    cwd: Path,
    log_path: Path,
    wrapper: bool,
    extra_env: dict[str, str] | None = None,
    timeout_seconds: float = BUILD_TIMEOUT_SECONDS,
    on_line: Callable[[str], None] | None = None,
) -> None:
    """Run a go command with its output in `log_path` (each line also to `on_line`); one retry
    with GOSUMDB=off if the checksum database could not be reached. Failure ->
    EnvironmentSetupError with the log tail."""
    go = find_go()
    argv = ["go", *args]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    for sumdb_off in (False, True):
        with log_path.open("w") as log:
            log.write(f"$ {' '.join(argv)}  (in {cwd}, GOSUMDB={'off' if sumdb_off else 'default'})\n")
            log.flush()
            env = go_environment(go, sumdb_off=sumdb_off, wrapper=wrapper) | (extra_env or {})
            try:
                returncode = _run_logged([str(go), *args], cwd, env, log, timeout_seconds, on_line)
            except subprocess.TimeoutExpired as exc:
                raise EnvironmentSetupError(
                    f"`{' '.join(argv[:3])} ...` did not finish within {timeout_seconds:.0f} s; "
                    f"see {log_path}"
                ) from exc
        if returncode == 0:
            return
        if not sumdb_off and _looks_like_sumdb_failure(log_path.read_text(errors="replace")):
            continue
        break
    raise EnvironmentSetupError(
        f"`{' '.join(argv[:2])}` failed (exit {returncode}); last lines of {log_path}:\n"
        f"{log_tail(log_path, 20)}"
    )


def _run_logged(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    log: TextIO,
    timeout_seconds: float,
    on_line: Callable[[str], None] | None,
) -> int:
    """Run `argv`, copying each output line to `log` and `on_line` as it comes; its exit code."""
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, errors="replace",
    )  # fmt: skip
    assert process.stdout is not None

    def pump(output: TextIO) -> None:
        for line in output:
            log.write(line)
            if on_line is not None:
                on_line(line.rstrip("\n"))

    reader = threading.Thread(target=pump, args=(process.stdout,), name="go-output", daemon=True)
    reader.start()
    try:
        returncode = process.wait(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    finally:
        reader.join(10)
        process.stdout.close()
        log.flush()
    return returncode


def count_packages(packages: list[str], *, cwd: Path, wrapper: bool) -> int | None:
    """How many packages building `packages` involves (`go list -deps`), or None when go list
    fails (the build that follows then reports the real error). Downloads modules as needed."""
    go = find_go()
    try:
        listed = subprocess.run(
            [str(go), "list", "-deps", "-trimpath", *packages],
            cwd=cwd, env=go_environment(go, wrapper=wrapper), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None
    if listed.returncode != 0:
        return None
    return sum(1 for line in listed.stdout.splitlines() if line.strip())


GOMOD_FILES = ("go.mod", "go.sum", "tools.go")


def wrapper_module_dir(
    root: Path, subdirectory: str = "", version: str = versions.KUBERNETES_VERSION
) -> Path:
    """A wrapper Go module (gomod/ for Kubernetes and etcd, gomod/lws/ for LWS), copied out of the
    installed package into the cache (`root`'s parent: ~/.cache/llmscale/gomod-<version>).

    go.mod/go.sum/tools.go ship with llmscale-tools (package data), so `cluster build` works from
    an installed wheel; the build runs in a writable copy under the cache (go may touch go.sum).
    """
    source = Path(__file__).resolve().parent / "gomod" / subdirectory
    name = "-".join(part for part in ("gomod", subdirectory, version) if part)
    target = root.parent / name
    target.mkdir(parents=True, exist_ok=True)
    for filename in GOMOD_FILES:
        shipped = source / filename
        if not shipped.is_file():
            raise EnvironmentSetupError(f"{shipped} is missing: reinstall llmscale-tools")
        copy = target / filename
        if not copy.is_file() or copy.read_bytes() != shipped.read_bytes():
            shutil.copyfile(shipped, copy)
    return target


def module_source_dir(module: str, cwd: Path) -> Path:
    """Where the module cache holds `module` as required by the Go module in `cwd`."""
    go = find_go()
    completed = subprocess.run(
        [str(go), "list", "-m", "-f", "{{.Dir}}", module],
        cwd=cwd,
        env=go_environment(go, wrapper=True),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    directory = Path(completed.stdout.strip())
    if completed.returncode != 0 or not directory.is_dir():
        raise EnvironmentSetupError(
            f"`go list -m {module}` in {cwd} failed: {completed.stderr.strip()[-500:]}"
        )
    return directory


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    """Serialise builds (two shells running `make test` must not build the same thing twice)."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def is_complete(component: Component, root: Path) -> bool:
    directory = component.cache_dir(root)
    return all(os.access(directory / binary, os.X_OK) for binary in component.binaries) and all(
        (directory / name).is_file() for name in component.files
    )


def _build_component(
    component: Component, root: Path, logs: Path, progress: BuildProgress, next_up: str
) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{component.name}-", dir=root))
    label = f"{component.name} {component.version}"
    try:
        log_path = logs / f"build-{component.name}-{component.version}.log"
        if component in (KUBERNETES, ETCD):
            if component is KUBERNETES:
                packages = [f"k8s.io/kubernetes/cmd/{name}" for name in component.binaries]
                # one invocation so the packages the four commands share compile once
                output, ldflags = [f"{staging}/"], version_ldflags(component.version)
            else:
                packages, output, ldflags = [versions.ETCD_PACKAGE], [str(staging / "etcd")], "-s -w"
            progress.report(
                f"{label}: resolving its packages (go list; downloads modules on a fresh machine)"
            )
            total = count_packages(packages, cwd=wrapper_module_dir(root), wrapper=True)
            progress.begin(label, total, next_up)
            try:
                run_go(
                    ["build", "-v", "-trimpath", "-ldflags", ldflags, "-o", *output, *packages],
                    cwd=wrapper_module_dir(root),
                    log_path=log_path,
                    wrapper=True,
                    on_line=progress.line,
                )
            finally:
                progress.end()
        elif component is LWS:
            # A go.mod of its own (`go install pkg@version` would ask the proxy for the module's
            # version list to check deprecation, which is not always served).
            module_dir = wrapper_module_dir(root, "lws", versions.LWS_VERSION)
            progress.begin(label, None, next_up)
            try:
                run_go(
                    [
                        "build",
                        "-v",
                        "-trimpath",
                        "-ldflags",
                        f"-s -w -X {versions.LWS_MODULE}/pkg/version.GitVersion={component.version}",
                        "-o",
                        str(staging / "lws"),
                        versions.LWS_PACKAGE,
                    ],
                    cwd=module_dir,
                    log_path=log_path,
                    wrapper=True,
                    on_line=progress.line,
                )
            finally:
                progress.end()
            source = module_source_dir(versions.LWS_MODULE, module_dir) / versions.LWS_CRD_SOURCE
            shutil.copyfile(source, staging / versions.LWS_CRD_FILE)
        else:
            package = versions.KWOK_PACKAGE if component is KWOK else versions.HELM_PACKAGE
            progress.begin(label, None, next_up)
            # outside any module, so `go install pkg@version` uses only that module's own graph
            try:
                with tempfile.TemporaryDirectory() as outside:
                    run_go(
                        ["install", "-v", "-trimpath", f"{package}@{component.version}"],
                        cwd=Path(outside),
                        log_path=log_path,
                        wrapper=False,
                        extra_env={"GOBIN": str(staging)},
                        on_line=progress.line,
                    )
            finally:
                progress.end()
        missing = [b for b in component.binaries if not (staging / b).is_file()]
        if missing:
            raise EnvironmentSetupError(f"build of {component.name} produced no {', '.join(missing)}")
        target = component.cache_dir(root)
        if target.exists():
            shutil.rmtree(target)
        # rename is atomic: an interrupted build never leaves a half-filled cache entry
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def ensure_binaries(
    bin_dir: Path,
    *,
    components: tuple[Component, ...] = ALL_COMPONENTS,
    report: Reporter = print,
    root: Path | None = None,
    progress: BuildProgress | None = None,
) -> dict[str, float]:
    """Build what the cache lacks, then link every binary into `bin_dir`.

    `progress` shows each build's packages compiled, elapsed time and what comes next (default:
    a plain line through `report` every 30 s). Returns seconds spent per component (0.0 when
    reused from the cache).
    """
    root = root or cache_root()
    logs = root.parent / "logs"
    progress = progress or BuildProgress(report)
    timings: dict[str, float] = {}
    with _build_lock(root):
        to_build = [c for c in components if not is_complete(c, root)]
        for component in components:
            if component not in to_build:
                timings[component.name] = 0.0
                report(f"{component.name} {component.version}: cached in {component.cache_dir(root)}")
                continue
            later = to_build[to_build.index(component) + 1 :]
            next_up = ", ".join(f"{c.name} {c.version}" for c in later) or f"link the binaries into {bin_dir}"
            report(f"{component.name} {component.version}: building (log in {logs}) ...")
            started = time.monotonic()
            _build_component(component, root, logs, progress, next_up)
            timings[component.name] = time.monotonic() - started
            report(f"{component.name} {component.version}: built in {timings[component.name]:.0f} s")
    bin_dir.mkdir(parents=True, exist_ok=True)
    for component in components:
        for binary in (*component.binaries, *component.files):
            link = bin_dir / binary
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(component.cache_dir(root) / binary)
    return timings


def missing_binaries(bin_dir: Path, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not os.access(bin_dir / name, os.X_OK)]

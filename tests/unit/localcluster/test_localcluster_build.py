from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmscale.errors import EnvironmentSetupError
from llmscale_tools.localcluster import build
from llmscale_tools.localcluster.build_progress import BuildProgress, is_package_line


def test_missing_go_toolchain_is_one_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build.shutil, "which", lambda _name: None)
    monkeypatch.setattr(build.os, "access", lambda _path, _mode: False)
    with pytest.raises(EnvironmentSetupError, match=r"Go toolchain \(`go`, 1.24 or newer\) is not on PATH"):
        build.find_go()


def _fake_go(tmp_path: Path, script: str) -> Path:
    go = tmp_path / "fakego" / "go"
    go.parent.mkdir()
    go.write_text("#!/bin/sh\n" + script)
    go.chmod(0o755)
    return go


def test_failed_build_shows_the_tail_of_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    go = _fake_go(tmp_path, "echo compiling; echo 'pkg/x.go:3: undefined: Foo' >&2; exit 1\n")
    monkeypatch.setattr(build, "find_go", lambda: go)
    with pytest.raises(EnvironmentSetupError) as exc:
        build.run_go(["build", "./..."], cwd=tmp_path, log_path=tmp_path / "b.log", wrapper=True)
    assert "`go build` failed (exit 1)" in str(exc.value)
    assert "undefined: Foo" in str(exc.value)


def test_unreachable_checksum_database_retries_with_gosumdb_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go = _fake_go(
        tmp_path,
        'if [ "$GOSUMDB" = off ]; then exit 0; fi\n'
        'echo "verifying module: checksum database unreachable"; exit 1\n',
    )
    monkeypatch.setattr(build, "find_go", lambda: go)
    build.run_go(["install", "x@v1"], cwd=tmp_path, log_path=tmp_path / "i.log", wrapper=False)
    assert "GOSUMDB=off" in (tmp_path / "i.log").read_text()


def test_cached_binaries_are_reused_and_linked_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cache" / "bin"
    directory = build.KWOK.cache_dir(root)
    directory.mkdir(parents=True)
    (directory / "kwok").write_text("#!/bin/sh\n")
    (directory / "kwok").chmod(0o755)

    def no_build(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("must not build a cached component")

    monkeypatch.setattr(build, "_build_component", no_build)
    messages: list[str] = []
    timings = build.ensure_binaries(
        tmp_path / "bin", components=(build.KWOK,), report=messages.append, root=root
    )
    assert timings == {"kwok": 0.0}
    assert os.readlink(tmp_path / "bin" / "kwok") == str(directory / "kwok")
    assert "cached" in messages[0]


def test_absent_cache_entry_is_built_into_the_versioned_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run_go(args: list[str], **kwargs: object) -> None:
        calls.append(args)
        gobin = Path(str(kwargs["extra_env"]["GOBIN"]))  # type: ignore[index]
        (gobin / "helm").write_text("")
        (gobin / "helm").chmod(0o755)

    monkeypatch.setattr(build, "run_go", fake_run_go)
    root = tmp_path / "cache" / "bin"
    build.ensure_binaries(tmp_path / "bin", components=(build.HELM,), report=lambda _m: None, root=root)
    assert calls == [["install", "-v", "-trimpath", f"helm.sh/helm/v3/cmd/helm@{build.HELM.version}"]]
    assert (root / f"helm-{build.HELM.version}" / "helm").is_file()


class SteppedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_build_output_is_streamed_to_the_log_and_counted_as_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what `go build -v` prints: downloads (not packages), then one import path per compiled package
    go = _fake_go(
        tmp_path,
        "echo 'go: downloading k8s.io/api v0.34.4'\n"
        "echo internal/abi; echo k8s.io/apimachinery/pkg/util/sets; echo k8s.io/kubernetes/cmd/kubectl\n",
    )
    monkeypatch.setattr(build, "find_go", lambda: go)
    messages: list[str] = []
    clock = SteppedClock()
    progress = BuildProgress(messages.append, clock=clock, plain_interval_seconds=30.0)
    progress.begin("kubernetes v1.34.4", 6, "etcd v3.6.5, kwok v0.7.0")
    build.run_go(
        ["build", "-v"], cwd=tmp_path, log_path=tmp_path / "k.log", wrapper=True, on_line=progress.line
    )
    progress.end()
    assert progress.compiled == 3 and progress.last_package == "k8s.io/kubernetes/cmd/kubectl"
    assert "go: downloading k8s.io/api" in (tmp_path / "k.log").read_text()
    assert messages == ["kubernetes v1.34.4: compiling of ~6 packages; next: etcd v3.6.5, kwok v0.7.0"]
    # 5 min 7 s later: 3 of 6 is 50 %, with the last package and what comes next
    clock.now += 307.0
    assert progress.status_line(clock()) == (
        "kubernetes v1.34.4: 3/6 packages compiled (50%), 5m07s elapsed, "
        "last k8s.io/kubernetes/cmd/kubectl; next: etcd v3.6.5, kwok v0.7.0"
    )


def test_plain_progress_reports_at_most_once_per_interval() -> None:
    messages: list[str] = []
    clock = SteppedClock()
    progress = BuildProgress(messages.append, clock=clock, plain_interval_seconds=30.0)
    progress.begin("etcd v3.6.5", None, "")
    for second in range(95):  # one package a second for 95 s: reports at 30, 60 and 90 s
        clock.now += 1.0
        progress.line(f"go.etcd.io/etcd/pkg{second}")
    progress.end()
    assert len(messages) == 1 + 3
    assert messages[1].startswith("etcd v3.6.5: 30 packages compiled, 0m30s elapsed")
    assert messages[3].endswith("next: done")


def test_only_import_paths_count_as_compiled_packages() -> None:
    assert is_package_line("k8s.io/client-go/tools/cache")
    assert is_package_line("runtime")
    assert not is_package_line("go: downloading k8s.io/api v0.34.4")
    assert not is_package_line("# k8s.io/kubernetes/cmd/kubectl")
    assert not is_package_line("pkg/x.go:3: undefined: Foo")


def test_lws_is_built_in_its_own_module_with_its_crd_kept_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[list[str], Path]] = []
    source = tmp_path / "modcache" / "lws"
    (source / "config/crd/bases").mkdir(parents=True)
    (source / "config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml").write_text("kind: X\n")

    def fake_run_go(args: list[str], **kwargs: object) -> None:
        calls.append((args, Path(str(kwargs["cwd"]))))
        output = Path(args[args.index("-o") + 1])
        output.write_text("")
        output.chmod(0o755)

    monkeypatch.setattr(build, "run_go", fake_run_go)
    monkeypatch.setattr(build, "module_source_dir", lambda module, cwd: source)
    root = tmp_path / "cache" / "bin"
    build.ensure_binaries(tmp_path / "bin", components=(build.LWS,), report=lambda _m: None, root=root)
    args, cwd = calls[0]
    assert args[0] == "build" and args[-1] == "sigs.k8s.io/lws/cmd"
    # a copy of the shipped gomod/lws beside the cache: a module that requires only sigs.k8s.io/lws
    # (never the Kubernetes wrapper)
    assert cwd == tmp_path / "cache" / f"gomod-lws-{build.LWS.version}"
    assert "require sigs.k8s.io/lws v0.8.0" in (cwd / "go.mod").read_text()
    cached = root / f"lws-{build.LWS.version}"
    assert (cached / "lws").is_file() and (cached / "lws-crd.yaml").read_text() == "kind: X\n"
    assert os.readlink(tmp_path / "bin" / "lws-crd.yaml") == str(cached / "lws-crd.yaml")
    assert build.is_complete(build.LWS, root)
    (cached / "lws-crd.yaml").unlink()
    assert not build.is_complete(build.LWS, root)  # a binary without its CRD is rebuilt

"""Lint images/*.Dockerfile without a container engine (none on these machines; hadolint is
not available offline): pinned bases, multi-stage, numeric non-root USER, exec-form
ENTRYPOINT, COPY sources that exist and are not excluded by .dockerignore."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DOCKERFILES = sorted((REPO / "images").glob("*.Dockerfile"))
# name:MAJOR.MINOR.PATCH[-variant], e.g. python:3.11.14-slim-bookworm (optionally @sha256:...)
_PINNED = re.compile(r"^[a-z0-9./_-]+:\d+\.\d+\.\d+(-[a-z0-9.-]+)?(@sha256:[a-f0-9]{64})?$")


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    buffer = ""
    for line in path.read_text().splitlines():
        if not buffer and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        joined.append(buffer + line)
        buffer = ""
    assert not buffer, f"{path.name}: dangling line continuation"
    out = []
    for text in joined:
        word, _, rest = text.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _base_images(instructions: list[tuple[str, str]]) -> list[str]:
    args = {}
    for word, rest in instructions:
        if word == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name] = default
    bases = []
    stages = set()
    for word, rest in instructions:
        if word == "FROM":
            image = rest.split()[0]
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
            if image not in stages:
                bases.append(image)
            if " AS " in rest.upper():
                stages.add(rest.split()[-1])
    return bases


def test_both_images_exist() -> None:
    assert [p.name for p in DOCKERFILES] == ["emulator.Dockerfile", "operator.Dockerfile"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_bases_are_pinned_and_never_latest(dockerfile: Path) -> None:
    bases = _base_images(_instructions(dockerfile))
    assert bases, "no FROM"
    for image in bases:
        pinned = ":latest" not in image and _PINNED.match(image)
        assert pinned, f"{dockerfile.name}: base {image!r} not pinned"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_multi_stage_with_a_numeric_non_root_user(dockerfile: Path) -> None:
    instructions = _instructions(dockerfile)
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert len(froms) >= 2, "single stage: build tools would ship in the image"
    final_stage = instructions[max(i for i, (w, _) in enumerate(instructions) if w == "FROM") :]
    users = [rest for word, rest in final_stage if word == "USER"]
    assert users, "the final stage runs as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]!r}: use a numeric, non-zero uid"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_entrypoint_is_exec_form_and_nothing_is_fetched(dockerfile: Path) -> None:
    instructions = _instructions(dockerfile)
    entrypoints = [rest for word, rest in instructions if word == "ENTRYPOINT"]
    assert entrypoints and isinstance(json.loads(entrypoints[-1]), list)
    for word, rest in instructions:
        assert not (word == "ADD" and "://" in rest), "ADD of a URL: unpinned download"
        assert not re.search(r"(curl|wget)\b.*\|\s*(ba)?sh", rest), "piping a download into a shell"


def _dockerignore_allows(relative: str) -> bool:
    allowed = False
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        if pattern == "**" or relative == pattern or relative.startswith(pattern + "/"):
            allowed = negate
    return allowed


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_in_the_build_context(dockerfile: Path) -> None:
    for word, rest in _instructions(dockerfile):
        if word != "COPY" or rest.startswith("--from"):
            continue
        sources = rest.split()[:-1]
        for source in sources:
            path = source.rstrip("/")
            assert (REPO / path).exists(), f"{dockerfile.name}: COPY {source}: no such file"
            assert _dockerignore_allows(path), f"{dockerfile.name}: COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_local_state_out() -> None:
    for local in (".venv", ".localcluster", ".git", "tests/e2e", "charts/llmscale"):
        assert not _dockerignore_allows(local), f"{local} would be sent to the builder"


def test_vllm_shim_compiles() -> None:
    source = (REPO / "images" / "vllm-shim.py").read_text()
    compile(source, "vllm-shim.py", "exec")
    assert source.startswith("#!/opt/llmscale/bin/python\n")


def test_chart_default_image_is_the_one_make_image_builds() -> None:
    makefile = (REPO / "Makefile").read_text()
    values = (REPO / "charts" / "llmscale" / "values.yaml").read_text()
    repository = re.search(r"^  repository: (\S+)$", values, re.MULTILINE)
    assert repository is not None
    assert f"-t {repository.group(1)}:" in makefile

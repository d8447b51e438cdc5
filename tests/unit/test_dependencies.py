"""pyproject.toml's dependencies and the images' lock agree (offline: no resolver runs here).

`make lock` writes images/requirements.lock; `make test-lowest` proves the floors by running
the tiers on the lowest allowed versions. These tests catch the drift between the two: a
dependency added to pyproject.toml but not locked, a floor raised above the locked version,
a lock line without a hash (the images install it with --require-hashes).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
LOCK_TEXT = (REPO / "images" / "requirements.lock").read_text(encoding="utf-8")
# The images run CPython 3.11 on Linux (images/*.Dockerfile: python:3.11.x-slim).
IMAGE_ENVIRONMENT = {
    "python_version": "3.11",
    "python_full_version": "3.11.14",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_machine": "x86_64",
}


def lock_entries() -> list[tuple[str, Version, list[str]]]:
    """(name, version, hashes) of every lock entry that applies to the image's Python."""
    entries = []
    for block in re.split(r"\n(?=[A-Za-z0-9])", LOCK_TEXT):
        head = block.split("\\", 1)[0].strip()
        if not head or head.startswith("#"):
            continue
        requirement, _, marker = head.partition(";")
        name, _, version = requirement.strip().partition("==")
        if marker.strip() and not Marker(marker.strip()).evaluate(IMAGE_ENVIRONMENT):
            continue
        entries.append((canonicalize_name(name), Version(version), re.findall(r"--hash=sha256:\w+", block)))
    return entries


LOCKED = {name: version for name, version, _ in lock_entries()}


def test_lock_parses_into_one_version_per_package() -> None:
    names = [name for name, _, _ in lock_entries()]
    assert len(names) == len(set(names)), "a package is locked twice for the image's Python"
    # the five the operator cannot start without, as a floor on what the parser found
    assert {"kopf", "kubernetes", "pydantic", "aiohttp", "prometheus-api-client"} <= set(names)


@pytest.mark.parametrize("line", PYPROJECT["project"]["dependencies"])
def test_every_direct_dependency_has_a_floor_and_is_locked_within_it(line: str) -> None:
    requirement = Requirement(line)
    floors = [spec for spec in requirement.specifier if spec.operator in (">=", "==", "~=")]
    assert floors, f"{line!r}: no lower bound; `make test-lowest` cannot prove anything about it"
    name = canonicalize_name(requirement.name)
    assert name in LOCKED, f"{name} is a dependency but not in images/requirements.lock: run `make lock`"
    assert requirement.specifier.contains(LOCKED[name], prereleases=True), (
        f"{name}=={LOCKED[name]} (images/requirements.lock) is outside {requirement.specifier}: `make lock`"
    )


def test_build_backend_is_locked_within_the_build_requirement() -> None:
    for line in PYPROJECT["build-system"]["requires"]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in LOCKED, (
            f"build requirement {name} is not locked (images install with --no-build-isolation)"
        )
        assert requirement.specifier.contains(LOCKED[name]), f"{name}=={LOCKED[name]} outside {requirement}"


def test_every_locked_file_carries_a_hash() -> None:
    unhashed = [name for name, _, hashes in lock_entries() if not hashes]
    assert not unhashed, f"lock entries without --hash (pip --require-hashes refuses them): {unhashed}"

"""Reproducible installs: requirements.lock holds every runtime and dev dependency, and the build
tools, at exact versions with their hashes, and `make` installs from it and nothing else (README,
"Two commands"). pyproject.toml keeps the ranges; `make lock` rewrites the lock from them.

The lock is read as pip reads it (continuation lines, markers, --hash options); the Makefile is
read through make itself (`make -n`, `make -p`), so what is checked is what `make run` runs.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
UV_LOCK = ROOT / "requirements" / "uv.txt"
STAMP = ".venv/.installed-stamp"
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;]+)\s*(?:;(?P<marker>.*))?$"
)
SHA256 = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass
class Pin:
    name: str
    version: Version
    marker: Marker | None
    hashes: list[str] = field(default_factory=list)

    def applies(self, env: dict[str, str] | None = None) -> bool:
        return self.marker is None or self.marker.evaluate(env)


def read_lock(path: Path) -> dict[str, Pin]:
    """name -> its pin, from a pip requirements file with hashes."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line and not pending:
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, f"{path.name} ends in a continuation line"
    pins: dict[str, Pin] = {}
    for entry in logical:
        requirement, *options = re.split(r"\s+(?=--)", entry.strip())
        match = PIN.match(requirement.strip())
        assert match, f"{path.name}: not an exact pin: {requirement!r}"
        name = canonicalize_name(match["name"])
        assert name not in pins, f"{path.name} pins {name} twice"
        marker = Marker(match["marker"].strip()) if match["marker"] else None
        pin = Pin(name, Version(match["version"]), marker)
        for option in options:
            key, _, value = option.partition("=")
            assert key == "--hash", f"{path.name}: unexpected option {option!r} for {name}"
            pin.hashes.append(value.strip())
        pins[name] = pin
    return pins


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared() -> list[Requirement]:
    """The runtime dependencies and the dev extra, as pyproject.toml states them."""
    project = pyproject()["project"]
    return [Requirement(r) for r in [*project["dependencies"],
                                     *project["optional-dependencies"]["dev"]]]


def make(*args: str) -> str:
    if shutil.which("make") is None:
        pytest.fail("make is needed: it is one of the two things a newcomer needs")
    # Run under `make test` too: the outer make's flags and variables stay out of it.
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    done = subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60, check=True, env=env)
    return done.stdout


def test_every_declared_requirement_is_pinned_inside_its_range() -> None:
    pins = read_lock(LOCK)
    assert len(declared()) >= 30  # pyproject.toml read, not an empty list
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is in pyproject.toml but not in requirements.lock: make lock"
        pin = pins[name]
        assert pin.marker is None, f"{name} is declared everywhere but pinned for {pin.marker}"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"requirements.lock pins {name}=={pin.version}, outside pyproject.toml's "
            f"{requirement.specifier}: make lock"
        )


def test_the_lock_is_closed_over_what_the_installed_packages_require() -> None:
    """Transitively: everything an installed locked package needs here (extras such as
    dramatiq[redis,rabbitmq] included) is pinned too, and the venv holds the locked versions."""
    pins = read_lock(LOCK)
    wanted: list[tuple[str, set[str]]] = [
        (canonicalize_name(r.name), set(r.extras)) for r in declared()
    ]
    seen: set[tuple[str, frozenset[str]]] = set()
    while wanted:
        name, extras = wanted.pop()
        if (name, frozenset(extras)) in seen:
            continue
        seen.add((name, frozenset(extras)))
        assert name in pins, f"{name} is needed but not in requirements.lock: make lock"
        pin = pins[name]
        assert pin.applies(), f"{name} is needed here but its pin is for {pin.marker}"
        installed = Version(importlib.metadata.version(name))
        assert installed == pin.version, (
            f".venv has {name} {installed}, the lock says {pin.version}: run make"
        )
        for text in importlib.metadata.requires(name) or []:
            needed = Requirement(text)
            envs = [{"extra": e} for e in extras] or [{"extra": ""}]
            if needed.marker is not None and not any(needed.marker.evaluate(e) for e in envs):
                continue
            dependency = canonicalize_name(needed.name)
            assert dependency in pins, f"{name} needs {needed}, not in requirements.lock"
            assert needed.specifier.contains(pins[dependency].version, prereleases=True), (
                f"{name} needs {needed}; requirements.lock pins {pins[dependency].version}"
            )
            wanted.append((dependency, set(needed.extras)))
    assert ("redis", frozenset()) in seen and ("pika", frozenset()) in seen  # dramatiq's extras


@pytest.mark.parametrize("path", [LOCK, UV_LOCK], ids=lambda p: p.name)
def test_every_pin_carries_sha256_hashes(path: Path) -> None:
    pins = read_lock(path)
    assert pins
    for pin in pins.values():
        assert pin.hashes, f"{path.name}: {pin.name}=={pin.version} has no --hash"
        for value in pin.hashes:
            assert SHA256.match(value), f"{path.name}: {pin.name}: not a sha256 hash: {value!r}"
        assert len(set(pin.hashes)) == len(pin.hashes), f"{pin.name}: a hash twice"


def test_the_lock_holds_files_for_more_than_this_python() -> None:
    """A universal lock: the compiled packages carry a hash for each wheel (3.11, 3.12, 3.13,
    other platforms) and the sdist, not the one file this machine took."""
    pins = read_lock(LOCK)
    for name in ("pyyaml", "markupsafe", "greenlet", "psycopg-binary", "pydantic-core"):
        assert len(pins[name].hashes) >= 10, f"{name}: only {len(pins[name].hashes)} hashes"


def test_build_tools_are_locked_inside_the_build_system_range() -> None:
    pins = read_lock(LOCK)
    for tool in ("pip", "setuptools"):
        assert tool in pins and pins[tool].marker is None, f"{tool} is not locked"
    for text in pyproject()["build-system"]["requires"]:
        requirement = Requirement(text)
        pin = pins[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(pin.version), (
            f"the lock's {pin.name} {pin.version} is outside [build-system] requires {text}"
        )
    for tool in ("pip", "setuptools"):
        assert Version(importlib.metadata.version(tool)) == pins[tool].version


def test_the_install_takes_only_the_lock_with_hashes() -> None:
    """`make` rebuilds the venv when the lock or pyproject.toml changes, installs the lock in
    hash-checking mode, and installs the project itself without resolving anything."""
    database = make("-p", "-n", "help")
    rule = re.search(rf"^{re.escape(STAMP)}:(.*)$", database, re.MULTILINE)
    assert rule, "no rule for the install stamp"
    prerequisites = rule[1].split()
    assert "requirements.lock" in prerequisites and "pyproject.toml" in prerequisites

    commands = make("-n", "-B", STAMP).splitlines()
    installs = [c for c in commands if re.search(r"\bpip install\b", c)]
    assert installs, commands
    from_lock = [c for c in installs if "--require-hashes" in c.split()]
    assert len(from_lock) == 1
    assert re.search(r"(?:^|\s)-r\s+requirements\.lock(?:\s|$)", from_lock[0]), from_lock[0]
    for command in installs:
        words = command.split()
        if command in from_lock:
            continue
        # Anything else installed is the project itself: no dependencies, no build isolation
        # (setuptools comes from the lock), so nothing is fetched by range.
        assert "--no-deps" in words and "--no-build-isolation" in words, command
        assert words[-2:] == ["-e", "."], command
    assert not any("--upgrade" in c.split() or "-U" in c.split() for c in installs)


def test_make_lock_writes_a_universal_hashed_lock_from_pyproject() -> None:
    commands = make("-n", "lock")
    compile_lock = [c for c in commands.splitlines() if "-o requirements.lock" in c]
    assert len(compile_lock) == 1, commands
    words = compile_lock[0].split()
    for option in ("--generate-hashes", "--universal", "pyproject.toml", "requirements/build.in"):
        assert option in words, (option, compile_lock[0])
    assert words[words.index("--extra") + 1] == "dev"
    assert "--require-hashes" in commands and "requirements/uv.txt" in commands
    assert "make lock" in make("help")
    assert LOCK.read_text().splitlines()[1].strip() == "#    make lock"

"""The house's plan, enforced: each stage imports only the core and the stages before it, nothing
imports the composition root, the imports have no cycle, and everything installs under
``abuse_desk.*`` (README, "How it fits together").

The graph is read from the source (every import, also those inside functions and under
``TYPE_CHECKING``), with the package-dir mapping of pyproject.toml, so it is the graph the
installed package has.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The order a message goes through the house; a stage may import only what stands before it
# (and itself). The composition root comes last and nothing else may import it.
LAYERS = ("core", "ingest", "parsers", "classifier", "workflow", "casework", "web", "app")
GENERIC_TOP_LEVEL = {"core", "ingest", "parsers", "classifier", "workflow", "casework", "web",
                     "app", "commands"}


def package_dirs() -> dict[str, Path]:
    """Installed package name -> its folder in the tree, from pyproject.toml."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {name: ROOT / folder for name, folder in setuptools["package-dir"].items()}


def modules() -> dict[str, Path]:
    """Every module of the installed package -> its file."""
    found: dict[str, Path] = {}
    dirs = package_dirs()
    for package, folder in dirs.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("").parts
            # a folder mapped on its own is its own package, not a part of this one
            if any((folder / Path(*rel[:i])).resolve() in {d.resolve() for d in dirs.values()}
                   for i in range(1, len(rel))):
                continue
            if rel[-1] == "__init__":
                rel = rel[:-1]
            found[".".join((package, *rel))] = path
    return found


def layer_of(module: str) -> str:
    if module == "abuse_desk":
        return "core"  # the package's front door: its docstring and version
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return parts[1]
    raise ValueError(f"{module} is in no layer: add its folder to LAYERS and pyproject.toml")


def imports_of(path: Path, known: Iterable[str], module: str = "") -> set[str]:
    """The modules of ours that *path* (the module *module*) imports, wherever in the file the
    import stands; relative imports are resolved from *module*."""
    names = set(known)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in names else base)
    return {name for name in found if name.split(".")[0] in GENERIC_TOP_LEVEL | {"abuse_desk"}}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known, name) for name, path in known.items()}


def against_the_order(edges: Mapping[str, Iterable[str]]) -> list[str]:
    """Each import from a stage to a later stage, or to the composition root."""
    wrong = []
    for source, targets in edges.items():
        for target in targets:
            here, there = layer_of(source), layer_of(target)
            if LAYERS.index(there) > LAYERS.index(here):
                wrong.append(f"{source} ({here}) imports {target} ({there})")
    return sorted(wrong)


def cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected parts of more than one module (Tarjan), and self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in edges:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                part.append(member)
                if member == node:
                    break
            if len(part) > 1 or node in edges.get(node, ()):
                found.append(sorted(part))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_stage_imports_a_later_stage_or_the_composition_root() -> None:
    assert against_the_order(graph()) == []


def test_the_imports_have_no_cycle() -> None:
    assert cycles(graph()) == []


def test_the_checks_see_a_back_arrow_and_a_cycle() -> None:
    edges = {"abuse_desk.parsers.formats.arf": {"abuse_desk.workflow.pipeline"},
             "abuse_desk.workflow.pipeline": {"abuse_desk.parsers.formats.arf",
                                              "abuse_desk.app.cli"},
             "abuse_desk.app.cli": {"abuse_desk.workflow.pipeline"}}
    assert against_the_order(edges) == [
        "abuse_desk.parsers.formats.arf (parsers) imports abuse_desk.workflow.pipeline (workflow)",
        "abuse_desk.workflow.pipeline (workflow) imports abuse_desk.app.cli (app)"]
    assert cycles(edges) == [["abuse_desk.app.cli", "abuse_desk.parsers.formats.arf",
                              "abuse_desk.workflow.pipeline"]]


def test_relative_imports_are_read_from_where_they_stand(tmp_path: Path) -> None:
    path = tmp_path / "arf.py"
    path.write_text("from ..core.config import Config\nfrom . import base\n"
                    "from .base import Stage\n")
    known = {"abuse_desk.core.config", "abuse_desk.parsers.base", "abuse_desk.parsers.arf"}
    assert imports_of(path, known, "abuse_desk.parsers.arf") == {
        "abuse_desk.core.config", "abuse_desk.parsers.base"}


def test_every_stage_has_its_folder_and_every_module_a_layer() -> None:
    names = modules()
    assert {layer_of(name) for name in names} == set(LAYERS)
    for name in names:
        assert layer_of(name) in LAYERS


@pytest.mark.parametrize("where", ["abuse_desk", "core", "ingest", "parsers", "classifier",
                                   "workflow", "casework", "web", "app", "tests", "bench"])
def test_nothing_imports_a_stage_by_its_bare_folder_name(where: str) -> None:
    """``import parsers.arf`` would load a second copy of the module beside
    ``abuse_desk.parsers.formats.arf`` (from the tree, not the install): everything names the
    installed package."""
    bare = []
    for path in (ROOT / where).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            bare += [f"{path.relative_to(ROOT)}: {name}" for name in names
                     if name.split(".")[0] in GENERIC_TOP_LEVEL]
    assert bare == []


def test_every_folder_is_installed() -> None:
    """Each folder under a mapped one (a package, or the data beside one: templates, static
    files, migrations) is listed for the wheel, and nothing listed is missing: a new folder
    fails here, not as a file missing from an install."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = set()
    for package, folder in package_dirs().items():
        for path in (folder, *folder.rglob("*")):
            if path.is_dir() and "__pycache__" not in path.parts:
                folders.add(".".join((package, *path.relative_to(folder).parts)))
    assert folders == set(setuptools["packages"])
    packages = {name for name, path in modules().items() if path.name == "__init__.py"}
    assert packages <= folders

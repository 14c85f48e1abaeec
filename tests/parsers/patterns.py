"""Every regular expression of the product: the compiled ones in module globals (and in the
lists, tuples and dicts there), every ``re.compile``/``re.search``/... call that an AST walk
finds in the source, and the patterns built at run time from data (configured rule terms, our
Message-ID domain, XML element names).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("abuse_desk.core", "abuse_desk.ingest", "abuse_desk.parsers", "abuse_desk.classifier",
            "abuse_desk.workflow", "abuse_desk.casework", "abuse_desk.web", "abuse_desk.app")
_CALLS = {"compile", "search", "match", "fullmatch", "sub", "subn", "findall", "finditer",
          "split"}


ALL_USES = frozenset({"search", "match", "fullmatch"})


@dataclass(frozen=True)
class Found:
    where: str  # "parsers/arf.py:427" or "parsers.arf._FROM_BY"
    pattern: re.Pattern[Any]
    # How the product applies it: "search" (also findall, finditer, sub, split), "match",
    # "fullmatch". A pattern whose use the AST walk cannot see is tried every way.
    uses: frozenset[str] = ALL_USES

    @property
    def key(self) -> tuple[Any, int]:
        return self.pattern.pattern, self.pattern.flags


def modules() -> Iterator[Any]:
    for package in PACKAGES:
        root = importlib.import_module(package)
        yield root
        for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
            if ".migrations." in info.name or info.name.endswith(".__main__"):
                continue
            yield importlib.import_module(info.name)


def _compiled(value: Any, depth: int = 0) -> Iterator[re.Pattern[Any]]:
    if isinstance(value, re.Pattern):
        yield value
    elif depth < 4 and isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _compiled(item, depth + 1)
    elif depth < 4 and isinstance(value, dict):
        for item in value.values():
            yield from _compiled(item, depth + 1)
    elif depth < 4 and dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _compiled(getattr(value, field.name), depth + 1)


def _use(method: str) -> str:
    return method if method in ("match", "fullmatch") else "search"


def _source_tree(module: Any) -> ast.AST:
    return ast.parse(Path(module.__file__).read_text(encoding="utf-8"))


def _uses_of_globals(trees: dict[str, ast.AST]) -> dict[tuple[str, str], set[str]]:
    """(module, global name) -> the methods called on it: ``NAME.search(...)`` in its own
    module, ``module.NAME.match(...)`` or an imported ``NAME.fullmatch(...)`` elsewhere."""
    imported: dict[str, dict[str, str]] = {}  # module -> local name -> defining module
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    imported.setdefault(name, {})[alias.asname or alias.name] = node.module
    uses: dict[tuple[str, str], set[str]] = {}

    def home_of(module: str, node: ast.AST) -> tuple[str, str] | None:
        if isinstance(node, ast.Name):
            return imported.get(module, {}).get(node.id, module), node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            return imported.get(module, {}).get(node.value.id, node.value.id), node.attr
        return None

    for name, tree in trees.items():
        receivers: set[int] = set()
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _CALLS
                    and (home := home_of(name, node.func.value)) is not None):
                uses.setdefault(home, set()).add(_use(node.func.attr))
                receivers.add(id(node.func.value))
                if isinstance(node.func.value, ast.Attribute):
                    receivers.add(id(node.func.value.value))
        for node in ast.walk(tree):  # any other use: passed on, put in a list, returned
            if (isinstance(node, ast.Name | ast.Attribute) and id(node) not in receivers
                    and isinstance(node.ctx, ast.Load)
                    and (home := home_of(name, node)) is not None):
                uses.setdefault(home, set()).add("escapes")
    return uses


def _in_globals(module: Any, uses: dict[tuple[str, str], set[str]]) -> Iterator[Found]:
    for name, value in vars(module).items():
        # A pattern the code only ever calls .match or .fullmatch on is tried that way; one
        # it passes around (in a list, to a helper) is tried every way.
        seen = frozenset(uses.get((module.__name__, name), ()))
        known = isinstance(value, re.Pattern) and seen and "escapes" not in seen
        for pattern in _compiled(value):
            yield Found(f"{module.__name__}.{name}", pattern, seen if known else ALL_USES)


def _in_source(module: Any, tree: ast.AST, unresolved: list[str]) -> Iterator[Found]:
    """The pattern arguments of ``re.X(...)`` calls, evaluated in the module's namespace."""
    path = Path(module.__file__)
    namespace = vars(module)
    enclosing: dict[int, str] = {}
    for function in ast.walk(tree):  # outer functions first: an inner one overwrites
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for inner in ast.walk(function):
                enclosing[id(inner)] = function.name
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                and node.func.attr in _CALLS and node.args):
            continue
        where = f"{path.relative_to(ROOT)}:{node.lineno}"
        method = node.func.attr
        flags_node = node.args[1] if method == "compile" and len(node.args) > 1 else None
        if method in ("search", "match", "fullmatch", "findall", "finditer", "split"):
            flags_node = node.args[2] if len(node.args) > 2 else None
        flags_node = next((k.value for k in node.keywords if k.arg == "flags"), flags_node)
        try:
            source = eval(compile(ast.Expression(node.args[0]), str(path), "eval"), namespace)
            flags = (eval(compile(ast.Expression(flags_node), str(path), "eval"), namespace)
                     if flags_node is not None else 0)
        except Exception:  # a name local to a function (or comprehension): "path:function"
            unresolved.append(f"{path.relative_to(ROOT)}:{enclosing.get(id(node), '<module>')}")
            continue
        if isinstance(source, re.Pattern):
            continue  # re.sub(compiled, ...): found in the globals
        # re.compile(...): a module global is found with its uses in the globals; one in a
        # function is tried every way (how its result is used is not followed).
        uses = frozenset() if method == "compile" else frozenset({_use(method)})
        yield Found(where, re.compile(source, flags), uses)


@contextmanager
def _compiled_meanwhile() -> Iterator[list[re.Pattern[Any]]]:
    """Every pattern compiled (``re.compile``, ``re.findall``, ...) inside the block."""
    seen: list[re.Pattern[Any]] = []
    original = re._compile  # type: ignore[attr-defined]

    def recording(pattern: Any, flags: Any) -> Any:
        compiled = original(pattern, flags)
        seen.append(compiled)
        return compiled

    with mock.patch.object(re, "_compile", recording):
        yield seen


def _built_at_run_time() -> Iterator[Found]:
    """Patterns compiled from data inside functions, with data as it comes in production."""
    from abuse_desk.core import mail
    from abuse_desk.parsers.formats import acns, guards
    from abuse_desk.workflow import mailer, redaction

    for name in ("infringement", "investigationinfo", "source", "content", "item", "ip_address",
                 "timestamp", "url", "port", "filename"):
        start, end = acns._tag_patterns(name)
        yield Found(f"parsers.acns._tag_patterns({name!r})", start)
        yield Found(f"parsers.acns._tag_patterns({name!r})", end)
    for guard in (guards.ReplyParser("abuse.example.net"),
                  guards.BounceParser("abuse.example.net")):
        yield Found(f"parsers.guards.{type(guard).__name__}._ours", guard._ours)
    raw = (b'Content-Type: multipart/mixed; boundary="=_a1"\r\n\r\n--=_a1\r\n'
           b'Content-Type: multipart/alternative; boundary=inner.b2\r\n\r\n--inner.b2--\r\n')
    with _compiled_meanwhile() as seen:
        mail._count_delimiters(raw)
    for pattern in seen:
        if isinstance(pattern.pattern, bytes) and b"inner" in pattern.pattern:
            yield Found("abuse_desk.core.mail._count_delimiters", pattern, frozenset({"search"}))
    with _compiled_meanwhile() as seen:
        mailer.redact("x", ["victim@example.net", "a.b+c@mail.example.org"], b"key")
    for pattern in seen:
        if "victim" in str(pattern.pattern):
            yield Found("abuse_desk.workflow.mailer.redact", pattern, frozenset({"search"}))
    # a reporter's display name, whole and word by word, as the redaction of notices builds it
    for pattern in redaction._name_patterns(["Jane Q. Doe-Smith", "jane.doe", "J. Doe"]):
        yield Found("abuse_desk.workflow.redaction._name_patterns", pattern, frozenset({"search"}))


def product_patterns() -> tuple[list[Found], list[str]]:
    """(every pattern found, once per pattern and use; the calls whose pattern is built in a
    function, from data, and so cannot be evaluated here)."""
    unresolved: list[str] = []
    loaded = list(modules())
    trees = {m.__name__: _source_tree(m) for m in loaded}
    uses = _uses_of_globals(trees)
    seen: dict[tuple[Any, int], Found] = {}

    def add(found: Found) -> None:
        known = seen.get(found.key)
        if known is None:
            seen[found.key] = found
        elif not found.uses <= known.uses:
            seen[found.key] = Found(known.where, known.pattern, known.uses | found.uses)

    for module in loaded:
        for found in _in_globals(module, uses):
            add(found)
    for module in loaded:
        for found in _in_source(module, trees[module.__name__], unresolved):
            if not found.uses:  # re.compile: its global has the uses, else every way
                found = seen.get(found.key) or Found(found.where, found.pattern)
            add(found)
    for found in _built_at_run_time():
        add(found)
    return list(seen.values()), unresolved

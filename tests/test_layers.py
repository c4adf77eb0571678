"""The layout keeps the layers: a pure core, dependencies that point down, no import cycle.

The import graph is read from the source (``ast``), not from ``sys.modules``: every
``import`` counts, also one inside a function (a local import is an edge that is merely
hidden). Only imports under ``if TYPE_CHECKING:``, which never run, are left out of the
cycle check; they must still point inside their layer or down. See docs/architecture.md.

A few checks also run a fresh interpreter, to see what an import really loads: the
simulator of ``supervision.testing`` loads the core and never the runtime, and the
control commands (``supervision status`` and friends) load neither the runtime nor
reload nor testing.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

_SPEC = importlib.util.find_spec("supervision")
assert _SPEC is not None and _SPEC.submodule_search_locations
PACKAGE = Path(next(iter(_SPEC.submodule_search_locations)))

BANNED_IN_CORE = frozenset(
    {
        "asyncio",
        "os",
        "time",
        "socket",
        "subprocess",
        "signal",
        "threading",
        # and their kin: the same I/O under other names
        "_thread",
        "concurrent",
        "ctypes",
        "fcntl",
        "multiprocessing",
        "posix",
        "select",
        "selectors",
    }
)
"""What the pure core never imports (issue 13: asyncio, os, time, socket, subprocess,
signal, threading; the rest are the same things under other names)."""

CORE = ("supervision._core", "supervision.ready")

# What each layer may import inside ``supervision``: its own layer and those below.
# A package not listed (``supervision.testing``, the public ``__init__``, the command
# line, and layers added later on top, such as stores or leases) is not restricted
# here; since no listed layer may import it, it can only sit on top.
# ``supervision.observe`` (figures, metrics, the HTTP endpoint, top, log formats) is a
# library the service composes (``sv.run(http=...)``, the figures of ``status``): it
# works on the core's events and on plain data (the status JSON), so it sits below the
# service and imports nothing but the core.
LAYERS: dict[str, tuple[str, ...]] = {
    "supervision._core": CORE,
    "supervision.ready": CORE,
    "supervision._process": (*CORE, "supervision._process"),
    "supervision._reload": (*CORE, "supervision._process", "supervision._reload"),
    "supervision._runtime": (*CORE, "supervision._process", "supervision._reload", "supervision._runtime"),
    "supervision.observe": (*CORE, "supervision.observe"),
    "supervision._service": (
        *CORE,
        "supervision._process",
        "supervision._reload",
        "supervision._runtime",
        "supervision.observe",
        "supervision._service",
    ),
}

# The simulator and everything the property tests run it with: the core only.
SIMULATOR = (
    "supervision.testing._simulate",
    "supervision.testing._schedule",
    "supervision.testing._view",
    "supervision.testing._lockstep",
    "supervision.testing.model",
    "supervision.testing.strategies",
)
ABOVE_THE_CORE = ("supervision._process", "supervision._reload", "supervision._runtime", "supervision._service")

_LAYERED = (PACKAGE / "_core" / "__init__.py").exists()
layout = pytest.mark.skipif(not _LAYERED, reason="the layers are not subpackages yet (issue 13, phase 2)")
before_layout = pytest.mark.xfail(
    not _LAYERED, strict=True, reason="before the layers: _spec <-> _process and _tree <-> _reexec are cycles"
)


# -- the import graph -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Import:
    """One ``import`` statement's target, as seen in ``module``'s source."""

    module: str  # the importing module
    target: str  # the absolute name imported (a module, or a package for "from pkg import name")
    line: int
    typing_only: bool  # under ``if TYPE_CHECKING:``


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, typing_only
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for inner in child.body:
                yield from _walk(ast.Module(body=[inner], type_ignores=[]), True)
            for inner in child.orelse:
                yield from _walk(ast.Module(body=[inner], type_ignores=[]), typing_only)
        else:
            yield from _walk(child, typing_only)


def imports_in(source: str, module: str, is_package: bool = False, known: Iterable[str] = ()) -> list[Import]:
    """Every import of ``source`` (the code of ``module``), resolved to absolute names.
    ``from pkg import name`` names ``pkg.name`` when that is a module in ``known``."""
    known = set(known)
    found: list[Import] = []
    here = module if is_package else module.rpartition(".")[0]
    for node, typing_only in _walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(module, alias.name, node.lineno, typing_only))
            continue
        if node.level:
            base = here.split(".")
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join([*base, node.module] if node.module else base)
        else:
            prefix = node.module or ""
        targets = []
        for alias in node.names:
            candidate = f"{prefix}.{alias.name}"
            targets.append(candidate if candidate in known else prefix)
        for target in dict.fromkeys(targets):
            found.append(Import(module, target, node.lineno, typing_only))
    return found


def graph() -> list[Import]:
    """Every import of every module of the package."""
    found = modules()
    edges: list[Import] = []
    for name, path in found.items():
        edges += imports_in(path.read_text(), name, path.name == "__init__.py", found)
    return edges


def internal_edges(edges: Iterable[Import], *, typing: bool) -> dict[str, set[str]]:
    """module -> the modules of the package it imports. The packages an import runs
    first (``a.b`` for ``a.b.c``) are left out: a package's ``__init__`` that re-exports
    its modules, which import each other, is the usual pattern, not a cycle."""
    known = modules()
    result: dict[str, set[str]] = {name: set() for name in known}
    for edge in edges:
        if edge.typing_only and not typing:
            continue
        target = edge.target
        while target and target not in known:
            target = target.rpartition(".")[0]
        if not target.startswith("supervision."):
            continue
        if target != edge.module:
            result[edge.module].add(target)
    return result


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def closure(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen = {start}
    pending = [start]
    while pending:
        for nxt in edges.get(pending.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                pending.append(nxt)
    return seen


def impurities(found: Iterable[Import]) -> list[str]:
    """The imports that make a core module impure, as ``module:line imports name``."""
    bad = []
    for edge in found:
        top = edge.target.partition(".")[0]
        if top in BANNED_IN_CORE:
            bad.append(f"{edge.module}:{edge.line} imports {edge.target}")
        elif top == "supervision" and not edge.target.startswith(CORE):
            bad.append(f"{edge.module}:{edge.line} imports {edge.target}, which is not the core")
    return bad


def _in(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


# -- the core is pure ----------------------------------------------------------------------


@layout
def test_the_core_imports_nothing_that_does_io() -> None:
    core = [edge for edge in graph() if _in(edge.module, CORE)]
    assert core, "no core module found"
    assert impurities(core) == []


def test_the_purity_check_catches_an_impure_core_module() -> None:
    # The bad machine: each of these, added to a core module, must be reported.
    sources = {
        "import asyncio": "asyncio",
        "from os import path": "os",
        "def f():\n    import time\n": "time",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import socket\n": "socket",
        "import concurrent.futures": "concurrent.futures",
        "from .._runtime import tree": "supervision._runtime",
    }
    for source, name in sources.items():
        found = impurities(imports_in(source, "supervision._core.machine"))
        assert len(found) == 1 and name in found[0], (source, found)
    assert impurities(imports_in("import enum\nfrom .spec import ChildSpec", "supervision._core.machine")) == []


# -- dependencies point down ---------------------------------------------------------------


@layout
def test_each_layer_imports_only_itself_and_the_layers_below() -> None:
    known = modules()
    wrong = []
    for edge in graph():
        layer = next((name for name in LAYERS if _in(edge.module, (name,))), None)
        if layer is None or not edge.target.startswith("supervision"):
            continue
        target = edge.target
        while target not in known and "." in target:
            target = target.rpartition(".")[0]
        if target != "supervision" and not _in(target, LAYERS[layer]):
            wrong.append(f"{edge.module}:{edge.line} imports {edge.target}")
    assert wrong == []


@layout
def test_every_layer_says_what_it_owns_and_may_import() -> None:
    for layer in LAYERS:
        path = modules()[layer]
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring and "import" in docstring, f"{layer}: its docstring must say what it may import"


@before_layout
def test_no_import_cycles() -> None:
    found = cycles(internal_edges(graph(), typing=False))
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_check_finds_a_cycle() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@layout
def test_no_registry_filled_by_an_import() -> None:
    # The kinds of child are a closed set, dispatched explicitly: nothing registers one.
    for name, path in modules().items():
        text = path.read_text()
        assert "register_kind" not in text and "KINDS[" not in text, name


# -- what an import really loads --------------------------------------------------------------


def _loaded(code: str) -> list[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    loaded: list[str] = json.loads(done.stdout.splitlines()[-1])
    return loaded


@layout
def test_the_simulator_runs_the_core_and_never_the_runtime() -> None:
    edges = internal_edges(graph(), typing=False)
    for name in SIMULATOR:
        reached = closure(name, edges)
        assert not [m for m in reached if _in(m, ABOVE_THE_CORE)], name
    assert "supervision._core.machine" in closure("supervision.testing._simulate", edges)
    loaded = _loaded(
        "import supervision as sv\n"
        "from supervision.testing import Crash, simulate\n"
        "async def w(ctx): ...\n"
        "trace = simulate(sv.Supervisor([sv.child('a', w)]), [Crash(('a',))])\n"
        "assert len(trace) == 3, trace\n"
    )
    assert "supervision._core.machine" in loaded
    assert [m for m in loaded if _in(m, ABOVE_THE_CORE)] == []


@layout
def test_import_supervision_loads_a_layer_only_when_a_name_of_it_is_used() -> None:
    assert [m for m in _loaded("import supervision") if m.startswith("supervision.")] == []
    loaded = _loaded("import supervision as sv\nsv.Supervisor, sv.child, sv.SpecError")
    assert "supervision._core.spec" in loaded
    assert [m for m in loaded if _in(m, ABOVE_THE_CORE)] == [] and "asyncio" not in loaded


@layout
def test_control_commands_load_neither_the_runtime_nor_reload_nor_testing(tmp_path: Path) -> None:
    socket = tmp_path / "none.sock"
    loaded = _loaded(
        "from supervision.__main__ import main\n"
        f"assert main(['status', '--control', {str(socket)!r}]) == 3\n"
        f"assert main(['restart', 'web', '--control', {str(socket)!r}]) == 3\n"
    )
    heavy = ("supervision._runtime", "supervision._reload", "supervision.testing", "asyncio")
    assert [m for m in loaded if _in(m, heavy)] == []
    assert "supervision._service.client" in loaded

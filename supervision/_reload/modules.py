"""Reloading a tree's source: re-import its modules and build the spec again, atomically.

:class:`Reloader` remembers where a tree came from (a ``"pkg.module:build"``
string, a ``"path/to/file.py[:name]"`` string, or a builder function, whose
module is used) and which modules are its own: the modules of the same top-level
package, or, for a module or file outside a package, the modules and packages of
the same directory. ``load()``:

1. finds which of those modules changed on disk since they were loaded (size and
   mtime, confirmed by a hash; a file modified around the time it was read is
   always hashed, as git does for "racily clean" files);
2. re-imports, as *new module objects*, the target's module, the changed
   modules, and the modules that use them (that hold a function, class or
   module of theirs), compiling from source (never from a stale ``.pyc``);
3. calls the builder of the new module.

The old module objects are left as they were: functions of unchanged children
keep running the code and globals they were loaded with. Until the caller
commits, ``sys.modules`` (and the attributes the import system set on parent
packages) can be restored exactly, which a rejected reload does.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import time
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .._core.errors import ReloadError
from .._core.spec import Supervisor
from .services import is_services_file
from .target import Target, _call, build, is_file_target, split_target

MAIN_ALIAS = "__supervision_main__"
"""The name a reloaded ``__main__`` script gets (so its ``if __name__ == "__main__"`` stays false)."""

_RACY_NS = 2_000_000_000  # files modified this close to being read are hashed, never trusted on stat
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a source file looked like when its module was loaded."""

    mtime_ns: int
    size: int
    digest: bytes | None  # None: not hashed (trusted on stat alone)
    taken: int  # time.time_ns() when it was read


@dataclass(frozen=True, slots=True)
class Origin:
    """Where the builder lives: a module (imported by name, or executed from
    ``file`` under that name) and the builder's (qualified) name in it."""

    module: str
    name: str
    file: str | None = None
    services: bool = False
    """A services file (TOML): read again, no module involved."""


def origin_of(target: Target) -> Origin:
    """The origin of a reloadable target; ``ReloadError`` if it has none."""
    if isinstance(target, Supervisor):
        raise ReloadError("this tree was started from a spec: reload needs a builder or a 'module:name' target")
    if isinstance(target, str):
        if is_services_file(target):
            return Origin("", "", os.path.abspath(target), services=True)
        module, name = split_target(target)
        if is_file_target(module):
            path = os.path.abspath(module)
            stem = os.path.splitext(os.path.basename(path))[0].replace("-", "_")
            return Origin("_supervision_target_" + stem, name, path)  # the name load_module gives it
        return Origin(module, name)
    owner = getattr(target, "__module__", None)
    qualname = getattr(target, "__qualname__", "")
    if not isinstance(owner, str) or not isinstance(qualname, str) or not qualname or "<" in qualname:
        raise ReloadError(f"the builder {target!r} is not a module-level function: it cannot be found again")
    if owner == "__main__":
        main = sys.modules.get("__main__")
        file = getattr(main, "__file__", None)
        if not file:
            raise ReloadError("the builder lives in an interactive __main__: there is no source to reload")
        return Origin(MAIN_ALIAS, qualname, os.path.abspath(file))
    return Origin(owner, qualname)


class Reloader:
    """Re-imports a tree's source and builds its spec again. See the module docstring."""

    def __init__(self, target: Target) -> None:
        self.origin = origin_of(target)
        self._stamps: dict[str, Stamp] = {}
        self._imports: dict[str, tuple[int, int, frozenset[str]]] = {}
        if self.origin.services:
            return
        for file in self._scope().values():
            self._stamps[file] = _stamp(file, hash_racy_only=True)

    # -- which modules ---------------------------------------------------------------

    def _root(self) -> tuple[str | None, str | None]:
        """The top-level package the origin belongs to, or the directory it is in."""
        origin = self.origin
        if origin.file is not None:
            return None, os.path.dirname(origin.file)
        top = origin.module.partition(".")[0]
        package = sys.modules.get(top)
        if package is not None and hasattr(package, "__path__"):
            return top, None
        file = getattr(sys.modules.get(origin.module), "__file__", None)
        return None, os.path.dirname(os.path.abspath(file)) if file else None

    def _belongs(self, name: str, module: object, top: str | None, directory: str | None) -> str | None:
        """The source file of ``module`` if it is one of the tree's own modules."""
        if name == "__main__" or name == "supervision" or name.startswith("supervision."):
            return None
        file = getattr(module, "__file__", None)
        if not isinstance(file, str) or not file.endswith(".py"):
            return None
        if name == self.origin.module:
            return os.path.abspath(file)
        if top is not None:
            return os.path.abspath(file) if name == top or name.startswith(top + ".") else None
        if directory is None:
            return None
        first = name.partition(".")[0]
        first_module = module if first == name else sys.modules.get(first)
        first_file = getattr(first_module, "__file__", None)
        if not isinstance(first_file, str):
            return None
        first_file = os.path.abspath(first_file)
        if os.path.dirname(first_file) == directory or (
            os.path.basename(first_file) == "__init__.py" and os.path.dirname(os.path.dirname(first_file)) == directory
        ):
            return os.path.abspath(file)  # a module of that directory, or of a package in it
        return None

    def _scope(self) -> dict[str, str]:
        """The tree's own modules now in ``sys.modules``: name -> source file."""
        top, directory = self._root()
        scope = {}
        for name, module in list(sys.modules.items()):
            file = self._belongs(name, module, top, directory)
            if file is not None:
                scope[name] = file
        return scope

    def _changed(self, scope: dict[str, str]) -> set[str]:
        changed = set()
        for name, file in scope.items():
            old = self._stamps.get(file)
            if old is None or _differs(file, old):
                changed.add(name)
        return changed

    # -- loading ---------------------------------------------------------------------

    def load(self) -> Swap:
        """Re-import what changed and call the builder: a :class:`Swap` holding
        the new spec, to commit or roll back. On an error, ``sys.modules`` is
        restored and the error raised as it is (the caller wraps it)."""
        origin = self.origin
        if origin.services:
            swap = Swap(self, set(), {})
            swap.spec = build(origin.file or "")
            return swap
        scope = self._scope()
        seeds = self._changed(scope) | {origin.module}
        names = _with_users(seeds, scope, self._imports)
        swap = Swap(self, names, scope)
        finder = _FreshFinder(names, swap.loaded)
        sys.meta_path.insert(0, finder)
        try:
            importlib.invalidate_caches()  # new files since the last import are found
            if origin.file is not None:
                module = _exec_file(origin.module, origin.file, swap.loaded)
            else:
                module = importlib.import_module(origin.module)
            builder = _lookup(module, origin.name)
            swap.spec = builder if isinstance(builder, Supervisor) else _call(builder, f"{origin.module}:{origin.name}")
        except BaseException:
            swap.rollback()
            raise
        finally:
            sys.meta_path.remove(finder)
        return swap

    def _restamp(self, loaded: dict[str, Stamp]) -> None:
        self._stamps.update(loaded)
        for file in self._scope().values():
            if file not in self._stamps:
                self._stamps[file] = _stamp(file, hash_racy_only=True)


class Swap:
    """Modules re-imported by a reload, not committed yet."""

    def __init__(self, reloader: Reloader, names: set[str], scope: dict[str, str]) -> None:
        self._reloader = reloader
        self.spec: Supervisor | None = None
        self.names = names
        """The modules re-imported (their old objects are in ``saved``)."""
        self.loaded: dict[str, Stamp] = {}  # source file -> stamp of what was compiled
        self._before = set(sys.modules)
        self._root = reloader._root()
        self.saved: dict[str, types.ModuleType] = {}
        self._attributes: list[tuple[types.ModuleType, str, Any]] = []
        for name in names:
            module = sys.modules.pop(name, None)
            if module is not None:
                self.saved[name] = module
            parent_name, _, child = name.rpartition(".")
            parent = sys.modules.get(parent_name) if parent_name else None
            if parent is not None:
                # Off the parent too, or ``from . import child`` would find the old one
                # there; the import system sets the new one.
                self._attributes.append((parent, child, parent.__dict__.pop(child, _MISSING)))
        self._done = False

    def rollback(self) -> None:
        """Put ``sys.modules`` back as it was before the reload."""
        if self._done:
            return
        self._done = True
        top, directory = self._root
        for name in list(sys.modules):
            if name in self.names or (
                name not in self._before and self._reloader._belongs(name, sys.modules[name], top, directory)
            ):
                del sys.modules[name]
        sys.modules.update(self.saved)
        for parent, child, value in self._attributes:
            if value is _MISSING:
                parent.__dict__.pop(child, None)
            else:
                setattr(parent, child, value)

    def commit(self) -> None:
        """Keep the new modules. Old ones the new code did not import again are
        put back, and keep their stamps (so they count as changed next time)."""
        if self._done:
            return
        self._done = True
        for name, module in self.saved.items():
            if name not in sys.modules:
                sys.modules[name] = module
        for parent, child, value in self._attributes:
            if sys.modules.get(parent.__name__) is not parent:
                # A package replaced by the reload: the old one stays as it was, for
                # the old code that still uses it.
                if value is _MISSING:
                    parent.__dict__.pop(child, None)
                else:
                    setattr(parent, child, value)
            elif value is not _MISSING and child not in parent.__dict__:
                setattr(parent, child, sys.modules.get(f"{parent.__name__}.{child}", value))  # not imported again
        for name in self.names:  # a re-imported package keeps its unchanged submodules as attributes
            package = sys.modules.get(name)
            if package is None or not hasattr(package, "__path__"):
                continue
            prefix = name + "."
            for sub, module in list(sys.modules.items()):
                child = sub[len(prefix) :]
                if sub.startswith(prefix) and "." not in child and child not in package.__dict__:
                    setattr(package, child, module)
        self._reloader._restamp(self.loaded)


# -- stamps --------------------------------------------------------------------------


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _stamp(file: str, *, hash_racy_only: bool = False) -> Stamp:
    now = time.time_ns()
    try:
        st = os.stat(file)
    except OSError:
        return Stamp(-1, -1, None, now)
    digest = None
    if not hash_racy_only or st.st_mtime_ns >= now - _RACY_NS:
        try:
            with open(file, "rb") as f:
                digest = _digest(f.read())
        except OSError:
            return Stamp(-1, -1, None, now)
    return Stamp(st.st_mtime_ns, st.st_size, digest, now)


def _differs(file: str, old: Stamp) -> bool:
    try:
        st = os.stat(file)
    except OSError:
        return True  # deleted: re-importing it fails, which rejects the reload
    same_stat = (st.st_mtime_ns, st.st_size) == (old.mtime_ns, old.size)
    if same_stat and old.mtime_ns < old.taken - _RACY_NS:
        return False
    if old.digest is None:
        return not same_stat
    try:
        with open(file, "rb") as f:
            return _digest(f.read()) != old.digest
    except OSError:
        return True


# -- which modules to re-import -------------------------------------------------------


def _with_users(
    seeds: set[str], scope: dict[str, str], imports: dict[str, tuple[int, int, frozenset[str]]]
) -> set[str]:
    """``seeds`` and, transitively, the modules of ``scope`` that use one of them:
    import it (``import x``, ``from x import y``, read from the source), or hold
    it, or a function or class defined in it, as a global. ``imports`` caches
    what each source file imports."""
    users: dict[str, set[str]] = {}
    for name, file in scope.items():
        module = sys.modules.get(name)
        if module is None:
            continue
        used_names = set(_imported(name, file, module, imports))
        for value in list(vars(module).values()):
            if isinstance(value, types.ModuleType):
                used_names.add(value.__name__)
            elif isinstance(value, (types.FunctionType, type)):
                used_names.add(getattr(value, "__module__", ""))
        for used in used_names:
            # A package holds its own submodules (the import system sets them): not a use.
            if used != name and used in scope and not used.startswith(name + "."):
                users.setdefault(used, set()).add(name)
    result = set()
    stack = list(seeds)
    while stack:
        name = stack.pop()
        if name in result:
            continue
        result.add(name)
        stack.extend(users.get(name, ()))
    return result


def _imported(
    name: str, file: str, module: types.ModuleType, cache: dict[str, tuple[int, int, frozenset[str]]]
) -> frozenset[str]:
    """The absolute names of the modules a source file imports (and, for
    ``from x import y``, ``x.y`` too, in case it is a submodule)."""
    try:
        st = os.stat(file)
        cached = cache.get(file)
        if cached is not None and cached[:2] == (st.st_mtime_ns, st.st_size):
            return cached[2]
        with open(file, "rb") as f:
            tree = ast.parse(f.read(), file)
    except (OSError, SyntaxError, ValueError):
        return frozenset()  # a broken file fails the import itself, which rejects the reload
    package = name if hasattr(module, "__path__") else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                found.update(".".join(parts[: n + 1]) for n in range(len(parts)))
        elif isinstance(node, ast.ImportFrom):
            try:
                base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            except (ImportError, ValueError):
                continue
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    result = frozenset(found)
    cache[file] = (st.st_mtime_ns, st.st_size, result)
    return result


def _lookup(module: types.ModuleType, qualname: str) -> Any:
    value: Any = module
    for part in qualname.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise AttributeError(f"{module.__name__} has no attribute {qualname!r}") from None
    return value


# -- importing from source --------------------------------------------------------------


class _FreshLoader(importlib.machinery.SourceFileLoader):
    """Compiles from the source, never from a ``.pyc`` (whose mtime check can miss
    an edit made within the same second, of the same size), and records a stamp
    of exactly what it compiled."""

    def __init__(self, fullname: str, path: str, loaded: dict[str, Stamp]) -> None:
        super().__init__(fullname, path)
        self._loaded = loaded

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        now = time.time_ns()
        st = os.stat(path)  # before reading: a later edit makes the stamp differ
        data = self.get_data(path)
        self._loaded[os.path.abspath(path)] = Stamp(st.st_mtime_ns, st.st_size, _digest(data), now)
        return self.source_to_code(data, path)


class _FreshFinder(importlib.abc.MetaPathFinder):
    """During a reload, finds the modules being re-imported with a ``_FreshLoader``."""

    def __init__(self, names: Iterable[str], loaded: dict[str, Stamp]) -> None:
        self._names = set(names)
        self._loaded = loaded

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader) or spec.origin is None:
            return spec
        loader = _FreshLoader(fullname, spec.origin, self._loaded)
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=loader, submodule_search_locations=spec.submodule_search_locations
        )


def _exec_file(name: str, file: str, loaded: dict[str, Stamp]) -> types.ModuleType:
    """Execute ``file`` as a new module called ``name`` (a file target, or a
    ``__main__`` script under ``MAIN_ALIAS``)."""
    if not os.path.isfile(file):
        raise FileNotFoundError(f"no such file: {file}")
    loader = _FreshLoader(name, file, loaded)
    spec = importlib.util.spec_from_file_location(name, file, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    directory = os.path.dirname(file)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # so the file can import its neighbours
    sys.modules[name] = module
    loader.exec_module(module)
    return module

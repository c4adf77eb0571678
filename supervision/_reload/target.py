"""Targets: what ``sv.start`` and ``sv.run`` accept, and how a spec is built from one.

A target is a ``Supervisor`` spec, a zero-argument builder returning one, or a
string: ``"pkg.module:build"``, ``"path/to/file.py[:name]"`` (default name
``build``) or ``"path/to/services.toml"`` (a services file, see ``services``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .._core.errors import SpecError, SupervisionError
from .._core.spec import Supervisor
from .services import is_services_file
from .services import load as load_services

Target = Supervisor | Callable[[], Supervisor] | str


@dataclass(frozen=True)
class Source:
    """Where a tree came from, so that it can be built again (reload)."""

    target: Target

    def describe(self) -> str:
        target = self.target
        if isinstance(target, str):
            return target
        if isinstance(target, Supervisor):
            return repr(target)
        return f"{getattr(target, '__module__', '?')}:{getattr(target, '__qualname__', repr(target))}"


def split_target(target: str) -> tuple[str, str]:
    """``"a.b:build"`` -> ``("a.b", "build")``; ``"x/y.py"`` -> ``("x/y.py", "build")``."""
    module, sep, name = target.rpartition(":")
    if not sep or not module or os.sep in name or name.endswith(".py"):
        return target, "build"
    return module, name


def is_file_target(module: str) -> bool:
    return module.endswith(".py") or os.sep in module


def load_module(module: str) -> ModuleType:
    """Import ``pkg.module`` or execute ``path/to/file.py`` as a module."""
    if not is_file_target(module):
        return importlib.import_module(module)
    path = os.path.abspath(module)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {module}")
    name = "_supervision_target_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {module}")
    loaded = importlib.util.module_from_spec(spec)
    directory = os.path.dirname(path)
    if directory not in sys.path:
        sys.path.insert(0, directory)  # so the file can import its neighbours
    sys.modules[name] = loaded
    try:
        spec.loader.exec_module(loaded)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return loaded


def build(target: Target) -> Supervisor:
    """Build the spec a target names. Errors propagate as they are."""
    if isinstance(target, Supervisor):
        return target
    if isinstance(target, str):
        if is_services_file(target):
            return load_services(target)  # read again on every build: a reload sees the edits
        module_name, name = split_target(target)
        module = load_module(module_name)
        try:
            builder: Any = getattr(module, name)
        except AttributeError:
            raise AttributeError(f"{module_name} has no attribute {name!r}") from None
        if isinstance(builder, Supervisor):
            return builder
        return _call(builder, target)
    if callable(target):
        return _call(target, target)
    raise SpecError((), "target", f"expected a Supervisor, a builder or 'module:name', got {target!r}")


def _call(builder: Any, target: object) -> Supervisor:
    if not callable(builder):
        raise SpecError((), "target", f"{target!r} is neither a Supervisor nor a builder function")
    spec = builder()
    if not isinstance(spec, Supervisor):
        raise SpecError((), "target", f"the builder {target!r} returned {spec!r}, not a Supervisor")
    return spec


_HERE = os.path.dirname(os.path.abspath(__file__))
_IMPORTLIB = os.path.dirname(os.path.abspath(importlib.__file__ or ""))


def describe_error(error: BaseException) -> str:
    """Why building a target failed, as the end of Python's traceback says it:
    the frame that raised, in the user's code (the innermost one outside the
    import machinery and ``supervision``), its source line, and the exception.

    A ``SyntaxError`` says its file and line itself; the errors of
    ``supervision`` (a ``SpecError``, a services file's error) say where in
    their message.
    """
    if isinstance(error, SupervisionError):
        return str(error)
    if isinstance(error, SyntaxError):
        return "".join(traceback.format_exception_only(error)).rstrip()
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if not _internal(frame.filename)]
    lines = traceback.format_list(frames[-1:]) + traceback.format_exception_only(error)
    return "".join(lines).rstrip()


def _internal(filename: str) -> bool:
    if filename.startswith("<frozen "):
        return True
    path = os.path.abspath(filename)
    return path.startswith(_HERE + os.sep) or path.startswith(_IMPORTLIB + os.sep)

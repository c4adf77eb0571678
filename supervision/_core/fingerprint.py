"""Fingerprints: compare code and values across a reload, where identity fails.

A reload re-imports modules, so every function and class in them is a new
object: ``old_worker is new_worker`` is False even when nothing was edited.
:func:`Fingerprints.of` maps a value to a plain structure that compares equal
(with ``==``) exactly when the two values would behave the same:

* a function: its code (below), its defaults and keyword defaults, its closure
  cell values, and what it uses by global name: plain constants, and functions
  and classes of the same code base (followed recursively), whether bound by
  name (``from .helpers import parse``) or read from a module
  (``helpers.parse``). So editing a helper that a worker calls, in its module
  or in another module of the same package, restarts that worker, and editing
  a constant it reads (``TIMEOUT = 5``) does too. The same code base is: the
  same top-level package, or, for a module outside any package, the modules
  and packages of its directory (what a reload re-imports). Code elsewhere
  (the standard library, installed packages, ``supervision``) is not followed:
  a reload never re-imports it. Other module globals (a lock, a registry, a
  connection) are *not* compared: see ``docs/reload.md``.
* a code object: its instructions (bytecode, which does not hold line numbers)
  with every constant they load compared by value rather than by its index in
  ``co_consts`` (nested code objects recursively), the names, the local, free
  and cell variable names, the argument counts, the flags and the exception
  table. Line numbers, file names and comments are left out, so moving a
  function or editing a comment is not a change. The docstring is left out
  too, whether edited, added or removed: no instruction loads it, and adding
  one shifts the index of every other constant (up to 3.13 a function's first
  constant is its docstring, or ``None`` without one), which is why the
  constants are compared where they are used and not as a tuple.
* a class: its module and qualified name, its bases, and its own attributes
  (methods by their code, plain constants by value).
* plain data (None, bool, int, float, str, bytes, tuples, lists, dicts, sets,
  pyrsistent structures), enum members (by class name and member name),
  dataclass instances (field by field), ``functools.partial`` and bound
  methods: by structure.
* anything else: by ``==`` (identity for objects without value equality), so a
  builder that creates a new connection object for a child on every call
  restarts that child on every reload, which is what it asked for.

Pure: reads objects, never imports, never touches a clock.
"""

from __future__ import annotations

import dataclasses
import dis
import enum
import functools
import inspect
import posixpath
import sys
import types
from collections.abc import Mapping
from typing import Any

from pyrsistent import PBag, PDeque, PList, PMap, PSet, PVector

_ATOMS = (type(None), bool, int, str, bytes, complex, type(Ellipsis))
_SEQUENCES = (tuple, list, PVector, PList, PDeque)
_SETS = (set, frozenset, PSet, PBag)
# Class attributes that describe the class to Python rather than define behaviour.
_CLASS_NOISE = frozenset(
    {
        "__dict__",
        "__weakref__",
        "__module__",
        "__qualname__",
        "__doc__",
        "__annotations__",
        "__slotnames__",
        "__dataclass_fields__",
        "__dataclass_params__",
        "__match_args__",
        "__firstlineno__",
        "__static_attributes__",
        "__parameters__",
        "__orig_bases__",
        "__abstractmethods__",
        "_abc_impl",
    }
)
_NOWHERE = sys.maxsize
# What a class's fingerprint compares; other attributes (descriptors, caches) are skipped.
_CLASS_MEMBERS = (types.FunctionType, type, staticmethod, classmethod, property, enum.Enum, list, dict, set)
_CO_HAS_DOCSTRING = getattr(inspect, "CO_HAS_DOCSTRING", 0)  # Python 3.14+


class _Opaque:
    """An object with no structure we know: equal to another by ``==``."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Opaque):
            return NotImplemented
        a, b = self.value, other.value
        if a is b:
            return True
        if type(a).__qualname__ != type(b).__qualname__:
            return False
        try:
            return bool(a == b)
        except Exception:  # an __eq__ that raises or returns an array: not the same
            return False

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<opaque {self.value!r}>"


class _Cycle:
    """Stands for an object whose fingerprint is being computed (a recursion)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Cycle) and other.name == self.name

    __hash__ = None  # type: ignore[assignment]


def _is_constant(value: object) -> bool:
    """Plain immutable data worth comparing when a function reads it as a global."""
    if isinstance(value, (*_ATOMS, float, enum.Enum)):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_is_constant(item) for item in value)
    return False


_LOADS_CONST = frozenset(dis.hasconst)
_EXTENDED_ARG = dis.EXTENDED_ARG


def _instructions(code: types.CodeType) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The code's instructions as ``(opcode, argument, ...)`` where a constant's
    argument is the rank of its first use instead of its ``co_consts`` index,
    and the ``co_consts`` indices in that order. Constants no instruction loads
    (the docstring) are not in it."""
    raw = code.co_code
    ranks: dict[int, int] = {}
    ops: list[int] = []
    extended = 0
    for offset in range(0, len(raw), 2):
        op, arg = raw[offset], raw[offset + 1] | extended
        if op == _EXTENDED_ARG:
            extended = arg << 8
            continue  # its effect is in the next argument (offsets still count it)
        extended = 0
        if op in _LOADS_CONST:
            arg = ranks.setdefault(arg, len(ranks))
        ops += (op, arg)
    return tuple(ops), tuple(ranks)


class Fingerprints:
    """Computes fingerprints, remembering each object's (one instance per diff).

    >>> async def a(ctx):
    ...     return 1  # a comment
    >>> async def b(ctx):
    ...     return 1
    >>> fp = Fingerprints()
    >>> fp.same(a, b)
    True
    """

    def __init__(self) -> None:
        # id -> (object, fingerprint); the object is kept so its id is not reused.
        self._memo: dict[int, tuple[object, Any]] = {}
        self._open: dict[int, int] = {}  # id -> depth, for the objects being fingerprinted
        self._reaches = _NOWHERE  # the lowest open depth the current computation refers back to
        # (id, id) -> (a, b, answer): ten thousand children running one function compare it once.
        self._answers: dict[tuple[int, int], tuple[object, object, bool]] = {}
        self._bases: dict[str, tuple[str, str | None] | None] = {}  # module name -> its code base

    def same(self, a: object, b: object) -> bool:
        """True if ``a`` and ``b`` would behave the same (``a is b`` always is)."""
        if a is b:
            return True
        key = (id(a), id(b))
        known = self._answers.get(key)
        if known is not None:
            return known[2]
        try:
            answer = bool(self.of(a) == self.of(b))
        except Exception:  # absurdly deep data, an object that resists inspection: a change, safely
            answer = False
        self._answers[key] = (a, b, answer)
        return answer

    def of(self, value: object) -> Any:
        """The fingerprint of ``value``: plain tuples, compared with ``==``."""
        kind = type(value)
        if kind in _ATOMS:
            return (kind.__name__, value)
        if kind is float:
            return ("float", float.hex(value))  # type: ignore[arg-type]  # nan == nan, -0.0 != 0.0
        key = id(value)
        memo = self._memo.get(key)
        if memo is not None:
            return memo[1]
        depth = self._open.get(key)
        if depth is not None:  # a recursion (a function that calls itself...)
            self._reaches = min(self._reaches, depth)
            return _Cycle(getattr(value, "__qualname__", kind.__qualname__))
        depth = self._open[key] = len(self._open)
        outer, self._reaches = self._reaches, _NOWHERE
        try:
            result = self._compute(value)
        finally:
            del self._open[key]
        reaches = self._reaches
        if reaches >= depth:
            # Self-contained: memoise it. A fingerprint that refers back to an
            # object still open above it is not, as it depends on where the
            # traversal started (so both sides of a diff compute it alike).
            self._memo[key] = (value, result)
            reaches = _NOWHERE
        self._reaches = min(outer, reaches)
        return result

    def _compute(self, value: Any) -> Any:
        of = self.of
        if isinstance(value, types.FunctionType):
            return self._function(value)
        if isinstance(value, types.CodeType):
            return self._code(value)
        if isinstance(value, type):
            return self._class(value)
        if isinstance(value, enum.Enum):
            return ("enum", type(value).__module__, type(value).__qualname__, value.name)
        if isinstance(value, (float, *_ATOMS)):  # subclasses of the atoms
            return (type(value).__qualname__, of(value.__class__.__mro__[-2](value)))
        if isinstance(value, _SEQUENCES):
            return (type(value).__qualname__, tuple(of(item) for item in value))
        if isinstance(value, (Mapping, PMap)):
            items = [(of(k), of(v)) for k, v in value.items()]
            return ("mapping", type(value).__qualname__, _Unordered(items))
        if isinstance(value, _SETS):
            return ("set", type(value).__qualname__, _Unordered([of(item) for item in value]))
        if isinstance(value, types.MethodType):
            return ("method", of(value.__func__), of(value.__self__))
        if isinstance(value, (staticmethod, classmethod)):
            return (type(value).__name__, of(value.__func__))
        if isinstance(value, property):
            return ("property", of(value.fget), of(value.fset), of(value.fdel))
        if isinstance(value, functools.partial):
            return ("partial", of(value.func), of(value.args), of(value.keywords))
        if isinstance(value, types.ModuleType):
            return ("module", value.__name__)
        if isinstance(value, (types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType)):
            return ("builtin", getattr(value, "__module__", None), value.__qualname__, _Opaque(value))
        if dataclasses.is_dataclass(value):
            fields = tuple((f.name, of(getattr(value, f.name))) for f in dataclasses.fields(value))
            return ("dataclass", of(type(value)), fields)
        call = getattr(type(value), "__call__", None)  # noqa: B004 - an object with an async __call__
        if getattr(type(value), "__eq__", None) is object.__eq__ and inspect.iscoroutinefunction(call):
            # An object with an async __call__ used as a worker: its class and its attributes.
            attributes = getattr(value, "__dict__", None)
            return ("callable", of(type(value)), of(dict(attributes)) if attributes is not None else _Opaque(value))
        return ("object", _Opaque(value))

    def _function(self, fn: types.FunctionType) -> Any:
        of = self.of
        code = fn.__code__
        cells: tuple[tuple[str, Any], ...] = ()
        if fn.__closure__:
            values = []
            for name, cell in zip(code.co_freevars, fn.__closure__, strict=True):
                try:
                    values.append((name, of(cell.cell_contents)))
                except ValueError:  # an empty cell (a name assigned later)
                    values.append((name, ("empty cell",)))
            cells = tuple(values)
        return (
            "function",
            of(code),
            of(fn.__defaults__),
            of(fn.__kwdefaults__),
            cells,
            self._globals(fn),
        )

    def _globals(self, fn: types.FunctionType) -> Any:
        """What ``fn`` uses by global name: plain constants, and functions and
        classes of its own code base, also read as attributes of a module of it."""
        names, attributes = _names(fn.__code__)
        return self._members(fn.__globals__, names, attributes, fn.__module__, set())

    def _members(
        self, namespace: Mapping[str, Any], names: set[str], attributes: set[str], module: object, seen: set[str]
    ) -> Any:
        used = []
        for name in sorted(names):
            if name not in namespace:
                continue  # a builtin, an attribute name, or not defined yet
            value = namespace[name]
            if isinstance(value, (types.FunctionType, type)):
                if self._own(module, getattr(value, "__module__", None)):
                    used.append((name, self.of(value)))
            elif _is_constant(value):
                used.append((name, self.of(value)))
            elif (
                isinstance(value, types.ModuleType) and value.__name__ not in seen and self._own(module, value.__name__)
            ):
                # ``helpers.parse(...)``: the module's members the code reads as
                # attributes (of anything: a superset), so a module read this way is followed.
                seen.add(value.__name__)
                members = self._members(vars(value), attributes, attributes, module, seen)
                used.append((name, ("module", value.__name__, members)))
        return tuple(used)

    def _own(self, user: object, used: object) -> bool:
        """True if module ``used`` is of the same code base as module ``user``."""
        if used == user:
            return True
        if not isinstance(user, str) or not isinstance(used, str):
            return False
        if used == "supervision" or used.startswith("supervision."):
            return False
        mine, theirs = self._base(user), self._base(used)
        if mine is None or theirs is None:
            return False
        if mine[1] is None:  # in a package: the same top-level package
            return theirs[0] == mine[0]
        return theirs[1] == mine[1]  # a module outside a package: the same directory

    def _base(self, module: str) -> tuple[str, str | None] | None:
        """``(top-level name, None)`` for a module of a package, ``(name,
        directory)`` for a module outside any package; None if unknown."""
        if module in self._bases:
            return self._bases[module]
        top = module.partition(".")[0]
        found = sys.modules.get(top)
        file = getattr(found, "__file__", None)
        base: tuple[str, str | None] | None = None
        if found is not None and hasattr(found, "__path__"):
            base = (top, None)
        elif isinstance(file, str):
            # A module's __file__ is absolute (Python 3.9+): its directory is plain
            # string work, no call to the OS (the core reads no file system state).
            base = (top, posixpath.dirname(posixpath.normpath(file)))
        self._bases[module] = base
        return base

    def _code(self, code: types.CodeType) -> Any:
        of = self.of
        ops, used = _instructions(code)
        return (
            "code",
            ops,
            tuple(of(code.co_consts[index]) for index in used),
            code.co_names,
            code.co_varnames,
            code.co_freevars,
            code.co_cellvars,
            code.co_argcount,
            code.co_posonlyargcount,
            code.co_kwonlyargcount,
            code.co_flags & ~_CO_HAS_DOCSTRING,
            code.co_exceptiontable if sys.version_info >= (3, 11) else b"",
        )

    def _class(self, cls: type) -> Any:
        of = self.of
        if cls.__module__ == "builtins" or cls.__module__.startswith("supervision."):
            return ("class", cls.__module__, cls.__qualname__, _Opaque(cls))  # never reloaded: by identity
        bases = tuple(
            (b.__module__, b.__qualname__, of(b) if self._own(cls.__module__, b.__module__) else None)
            for b in cls.__bases__
        )
        attributes = []
        for name, value in sorted(vars(cls).items()):
            if name in _CLASS_NOISE:
                continue
            if isinstance(value, _CLASS_MEMBERS) or _is_constant(value):
                attributes.append((name, of(value)))
        return ("class", cls.__module__, cls.__qualname__, bases, tuple(attributes))


class _Unordered:
    """A multiset of fingerprints (dict items, set members): order does not matter."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Unordered):
            return NotImplemented
        if len(other.items) != len(self.items):
            return False
        if self.items == other.items:
            return True
        remaining = list(other.items)
        for item in self.items:  # quadratic, but only for containers listed in another order
            for index, candidate in enumerate(remaining):
                if item == candidate:
                    del remaining[index]
                    break
            else:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]


_READS_GLOBAL = frozenset({"LOAD_GLOBAL", "LOAD_NAME"})
_READS_ATTRIBUTE = frozenset({"LOAD_ATTR", "LOAD_METHOD", "LOAD_SUPER_ATTR"})


def _names(code: types.CodeType) -> tuple[set[str], set[str]]:
    """The names a code object (and the code nested in it) reads as globals, and
    the attribute names it reads: ``x.parse()`` does not make a global ``parse`` used."""
    names: set[str] = set()
    attributes: set[str] = set()
    for instruction in dis.get_instructions(code):
        if instruction.opname in _READS_GLOBAL:
            names.add(instruction.argval)
        elif instruction.opname in _READS_ATTRIBUTE:
            attributes.add(instruction.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            inner_names, inner_attributes = _names(const)
            names |= inner_names
            attributes |= inner_attributes
    return names, attributes

"""The reload diff: two supervisor specs in, a :class:`Plan` out. Pure.

The diff goes by path. For each child id of a supervisor:

* only in the new spec: **added** (started in its place in the order);
* only in the old spec: **removed** (stopped and forgotten, snapshot included);
* a nested supervisor in both: diffed recursively and **updated in place**, its
  children left running, when its settings, its children or the fields its
  parent holds for it (``restart``, ``shutdown``, ...) changed. A supervisor is
  never restarted by a reload because its class changed: the core calls the
  current spec's ``plan()`` at each restart, so a new strategy (a new class,
  or a new body of ``plan()``) takes effect in place, like OTP's code_change;
* otherwise, any field of the child spec that differs, compared by
  fingerprint (see ``fingerprint``), or a change of kind (worker, process,
  supervisor): **changed** (restarted with the new spec);
* else **unchanged** (left running, with the same task or PID).

A supervisor whose own settings (strategy, intensity, period, auto_shutdown,
backoff, or its class) changed is updated in place; so is the order of its
children.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .dynamic import DynamicSupervisor
from .fingerprint import Fingerprints
from .paths import Path, format_path
from .spec import ChildSpec, Supervisor, descendants

# The fields of a child spec a reload compares, ``id`` and ``start`` apart. Those
# that hold validated plain values (enums, bools, numbers) compare exactly with
# ``==``, in one tuple comparison; the others (``state``, ``migrate``, and any
# field added later) go through fingerprints.
_CHILD_FIELDS = tuple(f.name for f in dataclasses.fields(ChildSpec) if f.compare and f.name not in ("id", "start"))
_PLAIN_FIELDS = ("restart", "shutdown", "significant", "ready", "ready_timeout", "state_version", "intensity", "period")
_OTHER_FIELDS = tuple(name for name in _CHILD_FIELDS if name not in _PLAIN_FIELDS)
_plain = operator.attrgetter(*_PLAIN_FIELDS)
_other = operator.attrgetter(*_OTHER_FIELDS)


@dataclass(frozen=True, slots=True, eq=False)
class Plan:
    """What updating a running supervisor from the ``old`` spec to the ``new``
    one changes. Ids are those of its children; nested plans are by id too.

    >>> async def a(ctx): ...
    >>> async def b(ctx): return 1
    >>> old = Supervisor([ChildSpec("x", a), ChildSpec("y", a)])
    >>> plan = diff(old, Supervisor([ChildSpec("x", b), ChildSpec("z", a)]))
    >>> plan.changed, plan.added, plan.removed
    (('x',), ('z',), ('y',))
    """

    path: Path
    old: Supervisor
    new: Supervisor
    added: tuple[str, ...] = ()
    """Children only in the new spec, in the new order."""
    removed: tuple[str, ...] = ()
    """Children only in the old spec, in the old order."""
    changed: tuple[str, ...] = ()
    """Children to restart with their new spec, in the new order."""
    nested: Mapping[str, Plan] = dataclasses.field(default_factory=dict)
    """Nested supervisors updated in place, with their own plan."""
    settings: bool = False
    """The supervisor's own settings (or class) changed."""
    respec: bool = False
    """The child spec the parent holds for this supervisor changed (restart, shutdown, ...)."""
    reordered: bool = False
    """The children kept are in another order."""

    @property
    def empty(self) -> bool:
        """True if applying the plan would change nothing."""
        return not (self.inside or self.respec)

    @property
    def inside(self) -> bool:
        """True if the supervisor itself changes (its settings or children), not
        only the spec its parent holds for it."""
        return bool(self.added or self.removed or self.changed or self.nested or self.settings or self.reordered)

    def child_path(self, id: str) -> Path:
        return (*self.path, id)

    # -- the predicted outcome, by path (the core reports what it actually did) --

    def started(self) -> tuple[Path, ...]:
        """Paths of the children the plan adds, this supervisor's and below."""
        return tuple(self._walk("added"))

    def stopped(self) -> tuple[Path, ...]:
        """Paths of the children the plan removes."""
        return tuple(self._walk("removed"))

    def restarted(self) -> tuple[Path, ...]:
        """Paths of the children the plan restarts."""
        return tuple(self._walk("changed"))

    def updated(self) -> tuple[Path, ...]:
        """Paths of the supervisors updated in place (settings or spec changed)."""
        paths = [self.path] if self.settings or self.respec else []
        for plan in self.nested.values():
            paths.extend(plan.updated())
        return tuple(paths)

    def _walk(self, field: str) -> Iterator[Path]:
        for id in getattr(self, field):
            yield (*self.path, id)
        for plan in self.nested.values():
            yield from plan._walk(field)

    def starting(self) -> Iterator[tuple[Path, ChildSpec]]:
        """The children the plan (re)starts, with their paths; for a supervisor
        started whole, every child below it as well."""
        specs = {spec.id: spec for spec in self.new.children} if self.added or self.changed else {}
        for id in (*self.added, *self.changed):
            path, spec = self.child_path(id), specs[id]
            yield path, spec
            if isinstance(spec.start, Supervisor):
                yield from descendants(spec.start, path)
        for nested in self.nested.values():
            yield from nested.starting()

    def __repr__(self) -> str:
        parts = [f"{k}={v!r}" for k in ("added", "removed", "changed") if (v := getattr(self, k))]
        parts += [f"{k}=True" for k in ("settings", "respec", "reordered") if getattr(self, k)]
        if self.nested:
            parts.append(f"nested={dict(self.nested)!r}")
        return f"Plan({format_path(self.path)}{', ' if parts else ''}{', '.join(parts)})"


def diff(old: Supervisor, new: Supervisor, path: Path = (), fingerprints: Fingerprints | None = None) -> Plan:
    """The plan that turns a supervisor running ``old`` into one running ``new``."""
    fp = fingerprints if fingerprints is not None else Fingerprints()
    before = old.children
    index = {spec.id: n for n, spec in enumerate(before)}
    added: list[str] = []
    changed: list[str] = []
    nested: dict[str, Plan] = {}
    kept = 0
    last = -1
    reordered = False
    for spec in new.children:
        n = index.get(spec.id)
        if n is None:
            added.append(spec.id)
            continue
        kept += 1
        if n < last:
            reordered = True
        last = n
        previous = before[n]
        if previous is spec:
            continue
        if previous.kind == "supervisor" and spec.kind == "supervisor" and _same_family(previous.start, spec.start):
            plan = diff(previous.start, spec.start, (*path, spec.id), fp)
            if not same_fields(previous, spec, fp):
                plan = dataclasses.replace(plan, respec=True)
            if not plan.empty:
                nested[spec.id] = plan
        elif not (  # the common case inline: a leaf whose fields are the same objects
            previous.kind == spec.kind != "supervisor"
            and _plain(previous) == _plain(spec)
            and all(map(operator.is_, _other(previous), _other(spec)))
            and fp.same(previous.start, spec.start)
        ) and not same_child(previous, spec, fp):
            changed.append(spec.id)
    removed: tuple[str, ...] = ()
    if kept < len(before):
        ids = {spec.id for spec in new.children}
        removed = tuple(spec.id for spec in before if spec.id not in ids)
    return Plan(
        path=path,
        old=old,
        new=new,
        added=tuple(added),
        removed=removed,
        changed=tuple(changed),
        nested=nested,
        settings=not same_settings(old, new, fp),
        reordered=reordered,
    )


def _same_family(old: Supervisor, new: Supervisor) -> bool:
    """A dynamic supervisor's children come from a template, an ordinary one's from
    its spec: one cannot become the other in place, it is restarted instead."""
    return isinstance(old, DynamicSupervisor) == isinstance(new, DynamicSupervisor)


def same_settings(old: Supervisor, new: Supervisor, fp: Fingerprints | None = None) -> bool:
    """True if two supervisor specs have the same own settings and class."""
    fp = fp if fp is not None else Fingerprints()
    return fp.same(type(old), type(new)) and fp.same(old.settings(), new.settings())


def same_fields(old: ChildSpec, new: ChildSpec, fp: Fingerprints) -> bool:
    """True if two child specs agree on every field but ``start``."""
    if _plain(old) != _plain(new):
        return False
    olds, news = _other(old), _other(new)
    if all(map(operator.is_, olds, news)):  # the same objects, mostly (defaults, shared settings)
        return True
    return all(a is b or fp.same(a, b) for a, b in zip(olds, news, strict=True))


def same_child(old: ChildSpec, new: ChildSpec, fp: Fingerprints | None = None) -> bool:
    """True if a running child of spec ``old`` need not restart to run ``new``.

    For two supervisors, the whole subtree must be the same (the diff updates
    those in place instead).
    """
    if old is new:
        return True
    fp = fp if fp is not None else Fingerprints()
    if old.kind != new.kind or not same_fields(old, new, fp):
        return False
    if old.kind == "supervisor":
        return diff(old.start, new.start, (), fp).empty
    return fp.same(old.start, new.start)

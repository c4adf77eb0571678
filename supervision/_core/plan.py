"""``supervision reload --dry-run``: what a reload would do, and why. Pure.

:func:`explain` takes the spec the tree runs, the spec a reload would install
and the status of every child of the running tree, and returns a
:class:`DryRun`: the paths the reload would start, stop, restart and update in
place, each with its reasons (which field changed, from what to what; whose
code changed), in the order the runtime applies them.

It reads the reload diff (``diff.diff``), and predicts what the core's update
job does with it given the children's statuses:

- a removed child is stopped (whatever its status);
- a changed child that runs, or waits for its own retry, is restarted; one that
  is terminated (or waits on a sibling's retry) only takes its new spec, and
  is listed as updated;
- an added child is started;
- a supervisor whose own settings changed is updated in place; a nested
  supervisor whose child spec changed, or that is not running, is updated; a
  running one whose children changed is updated recursively.

The lists are those of the ``ReloadApplied`` event the real reload emits, so
that a test can hold the two to each other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .diff import Plan, diff, same_child
from .fingerprint import Fingerprints
from .paths import Path, format_path
from .spec import ChildSpec, Supervisor
from .status import Status

Action = Literal["start", "stop", "restart", "update"]
ACTIONS: tuple[Action, ...] = ("stop", "restart", "start", "update")

_CHILD_FIELDS = tuple(f.name for f in dataclasses.fields(ChildSpec) if f.compare and f.name not in ("id", "start"))


@dataclass(frozen=True)
class Change:
    """One thing a reload would do to the child (or supervisor) at ``path``."""

    action: Action
    path: Path
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "path": format_path(self.path), "reasons": list(self.reasons)}


@dataclass(frozen=True)
class DryRun:
    """The plan of a reload, in the order the runtime would apply it."""

    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()
    """What changes nothing that runs (a new order of children), said once."""

    def paths(self, action: Action) -> tuple[Path, ...]:
        return tuple(dict.fromkeys(change.path for change in self.changes if change.action == action))

    @property
    def started(self) -> tuple[Path, ...]:
        return self.paths("start")

    @property
    def stopped(self) -> tuple[Path, ...]:
        return self.paths("stop")

    @property
    def restarted(self) -> tuple[Path, ...]:
        return self.paths("restart")

    @property
    def updated(self) -> tuple[Path, ...]:
        return self.paths("update")

    @property
    def empty(self) -> bool:
        return not self.changes and not self.notes

    def to_json(self) -> dict[str, Any]:
        """As the control protocol carries it: the ``reload`` result's four lists,
        plus ``changes`` with the reasons."""
        result: dict[str, Any] = {
            "started": [format_path(path) for path in self.started],
            "stopped": [format_path(path) for path in self.stopped],
            "restarted": [format_path(path) for path in self.restarted],
            "updated": [format_path(path) for path in self.updated],
        }
        result["changes"] = [change.to_json() for change in self.changes]
        result["notes"] = list(self.notes)
        return result


def explain(
    old: Supervisor,
    new: Supervisor,
    status: Callable[[Path], Status | None],
    fingerprints: Fingerprints | None = None,
) -> DryRun:
    """The plan of updating a tree running ``old`` to ``new``.

    ``status(path)`` is the status of the child at ``path`` in the running tree
    (None if it has no such child: a temporary child that exited, a deleted one).
    """
    fp = fingerprints if fingerprints is not None else Fingerprints()
    plan = diff(old, new, (), fp)
    return DryRun(tuple(_supervisor(plan, status, fp)), tuple(_notes(plan)))


def _notes(plan: Plan) -> Iterator[str]:
    if plan.reordered:
        order = ", ".join(spec.id for spec in plan.new.children)
        yield f"{format_path(plan.path)}: the children take the new order ({order}); none restarts for it"
    for nested in plan.nested.values():
        yield from _notes(nested)


def format_plan(dry_run: DryRun | Mapping[str, Any]) -> str:
    """The plan as ``supervision reload --dry-run`` prints it (from a ``DryRun``
    or its JSON form, as the control protocol carries it)."""
    data = dry_run.to_json() if isinstance(dry_run, DryRun) else dry_run
    changes = data.get("changes", [])
    notes = data.get("notes", [])
    if not changes and not notes:
        return "reload would change nothing"
    width = max([len(change["path"]) for change in changes] + [1])
    lines = ["reload would:"]
    for change in changes:
        reasons = "; ".join(change["reasons"])
        lines.append(f"  {change['action']:<8} {change['path']:<{width}}  {reasons}".rstrip())
    lines.extend(f"  note: {note}" for note in notes)
    return "\n".join(lines)


# -- the prediction --------------------------------------------------------------------------


def _supervisor(plan: Plan, status: Callable[[Path], Status | None], fp: Fingerprints) -> Iterator[Change]:
    """What the core's update job does with ``plan``, in its order."""
    old_rank = {spec.id: n for n, spec in enumerate(plan.old.children)}
    old_specs = {spec.id: spec for spec in plan.old.children}
    new_specs = {spec.id: spec for spec in plan.new.children}
    here = {id for id in (*old_specs, *new_specs) if status((*plan.path, id)) is not None}
    changed = {id for id in plan.changed if id in here}
    changes: dict[str, tuple[str, ...]] = {id: _child_reasons(old_specs[id], new_specs[id], fp) for id in changed}
    for id in plan.added:  # a dynamic child the new spec now declares
        if id in here and not same_child(_running_spec(old_specs, id, new_specs), new_specs[id], fp):
            changed.add(id)
            changes[id] = ("now declared in the spec, with another spec than the running one",)
    for id in sorted((id for id in plan.removed if id in here), key=old_rank.__getitem__, reverse=True):
        yield Change("stop", (*plan.path, id), ("no longer in the spec",))
    restarted: set[str] = set()
    for id in sorted(changed, key=lambda id: old_rank.get(id, len(old_rank)), reverse=True):
        path = (*plan.path, id)
        current = status(path)
        if current is Status.RUNNING or current is Status.RESTARTING:
            # A restarting child waiting for its own retry is started by the
            # reload. (One waiting on a sibling's retry in a group restart only
            # takes its spec: the status does not tell them apart, so the plan
            # says "restart" for both; the window for this is one backoff delay.)
            restarted.add(id)
        else:
            yield Change("update", path, (*changes[id], f"it is {current}: it takes the new spec when started"))
    if plan.settings:
        yield Change("update", plan.path, _settings_reasons(plan.old, plan.new, fp))
    new_rank = {spec.id: n for n, spec in enumerate(plan.new.children)}
    added = {id for id in plan.added if id not in here}
    nested = {id for id in plan.nested if id in here}
    for id in sorted(restarted | added | nested, key=new_rank.__getitem__):
        path = (*plan.path, id)
        if id in restarted:
            yield Change("restart", path, changes[id])
        elif id in added:
            yield Change("start", path, ("new in the spec",))
        else:
            inner = plan.nested[id]
            running = status(path) is Status.RUNNING
            if inner.respec or not running:
                reasons = _field_reasons(old_specs[id], new_specs[id], fp) if inner.respec else ()
                if not running:
                    reasons = (*reasons, f"it is {status(path)}: it starts with the new spec")
                yield Change("update", path, reasons)
            if running and inner.inside:
                yield from _supervisor(inner, status, fp)


def _running_spec(old: Mapping[str, ChildSpec], id: str, new: Mapping[str, ChildSpec]) -> ChildSpec:
    return old.get(id, new[id])


# -- reasons ---------------------------------------------------------------------------------


def _child_reasons(old: ChildSpec, new: ChildSpec, fp: Fingerprints) -> tuple[str, ...]:
    """Why a child restarts: the fields that changed, and how."""
    if old.kind != new.kind:
        return (f"it was a {old.kind}, it is a {new.kind}",)
    reasons = list(_field_reasons(old, new, fp))
    if old.kind == "worker" and not fp.same(old.start, new.start):
        reasons.append(f"the code of {_function_name(new.start)} changed")
    elif old.kind == "process" and not fp.same(old.start, new.start):
        for name in (f.name for f in dataclasses.fields(old.start)):
            before, after = getattr(old.start, name), getattr(new.start, name)
            if before != after:
                reasons.append(_what_changed(name, before, after))
    elif old.kind == "supervisor":
        reasons.append("its subtree changed")
    return tuple(reasons) or ("its spec changed",)


def _field_reasons(old: ChildSpec, new: ChildSpec, fp: Fingerprints) -> tuple[str, ...]:
    reasons = []
    for name in _CHILD_FIELDS:
        before, after = getattr(old, name), getattr(new, name)
        if before is not after and not fp.same(before, after):
            reasons.append(_what_changed(name, before, after))
    return tuple(reasons)


def _settings_reasons(old: Supervisor, new: Supervisor, fp: Fingerprints) -> tuple[str, ...]:
    reasons = []
    if not fp.same(type(old), type(new)):
        if type(old).__qualname__ != type(new).__qualname__:
            reasons.append(f"its class: {type(old).__qualname__} -> {type(new).__qualname__}")
        else:
            reasons.append(f"the code of {type(new).__qualname__} changed (its restart strategy)")
    before, after = old.settings(), new.settings()
    for name in before:
        if not fp.same(before[name], after[name]):
            reasons.append(_what_changed(name, before[name], after[name]))
    return tuple(reasons) or ("its settings changed",)


def _what_changed(name: str, before: Any, after: Any) -> str:
    if name in ("state", "migrate"):
        return f"{name} changed"
    if name == "env":
        old, new = dict(before or ()), dict(after or ())
        keys = sorted(key for key in old.keys() | new.keys() if old.get(key) != new.get(key))
        return "env: " + ", ".join(keys) + " changed" if keys else "env: inherited or not"
    if name == "argv":
        return f"argv: {' '.join(before)!r} -> {' '.join(after)!r}"
    return f"{name}: {_short(before)} -> {_short(after)}"


def _short(value: Any) -> str:
    text = str(value.value) if hasattr(value, "value") and not isinstance(value, (int, float)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _function_name(function: Any) -> str:
    module = getattr(function, "__module__", None)
    name = getattr(function, "__qualname__", None) or repr(function)
    return f"{module}.{name}" if module and not module.startswith("_supervision_target_") else name

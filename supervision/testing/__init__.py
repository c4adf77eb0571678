"""Tools to test supervision trees, and the project's own conformance harness.

- ``ManualClock``: an injectable clock; restart windows and backoff delays pass
  without sleeping. ``crash(tree, path)`` makes a running child exit as crashed.
- ``simulate(spec, schedule)``: run a spec through the real core on a virtual
  clock and get the trace of events; no asyncio, no sleeping. A schedule is a
  list of steps: ``Crash``, ``Exit``, ``FailNextStart``, ``Advance``,
  ``TerminateChild``, ``RestartChild``, ``DeleteChild``, ``StartChild``,
  ``StartTree``, ``StopTree``. ``Simulator`` runs one step at a time and answers
  ``which_children``/``count_children`` in between.
- ``supervision.testing.model``: the reference model of the restart semantics;
  ``check_against_model(spec, schedule)`` (and ``Lockstep``) run the core and the
  model side by side and raise ``Disagreement`` where they differ.
- ``supervision.testing.strategies``: hypothesis strategies for trees of specs
  and schedules (import it explicitly; it needs hypothesis).

See ``docs/testing.md``.
"""

from __future__ import annotations

import contextlib

from ._clock import ManualClock
from ._crash import InjectedCrash, crash
from ._lockstep import Disagreement, Lockstep, check_against_model
from ._schedule import (
    Advance,
    Crash,
    DeleteChild,
    Exit,
    FailNextStart,
    RestartChild,
    Scale,
    SimulatedCrash,
    SimulatedStartFailure,
    StartChild,
    StartDynamic,
    StartTree,
    Step,
    StopTree,
    TerminateChild,
    describe_supervisor,
)
from ._simulate import Simulator, simulate
from ._view import TreeView, format_event

__all__ = [
    "Advance",
    "Crash",
    "DeleteChild",
    "Disagreement",
    "Exit",
    "FailNextStart",
    "InjectedCrash",
    "Lockstep",
    "ManualClock",
    "RestartChild",
    "Scale",
    "SimulatedCrash",
    "SimulatedStartFailure",
    "Simulator",
    "StartChild",
    "StartDynamic",
    "StartTree",
    "Step",
    "StopTree",
    "TerminateChild",
    "TreeView",
    "check_against_model",
    "crash",
    "describe_supervisor",
    "format_event",
    "simulate",
]

# Users see supervision.testing.X, not supervision.testing._module.X.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("supervision.testing._"):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = "supervision.testing"
del _name, _obj

"""supervision: Erlang/OTP-style supervision trees for Python.

>>> import supervision as sv
>>> async def work(ctx): ...
>>> spec = sv.Supervisor([sv.child("work", work)], strategy="one_for_one")

See ``docs/`` for the concepts and every public name.
"""

from __future__ import annotations

import contextlib

from . import (
    _process_runtime,  # noqa: F401  registers the "process" child kind
    ready,
)
from ._clock import Clock, LoopClock
from ._context import Context, current
from ._core import Status
from ._errors import (
    AlreadyPresent,
    AlreadyStarted,
    ChildRestarting,
    ChildRunning,
    NotFound,
    ReloadError,
    Shutdown,
    ShutdownTimeout,
    SpecError,
    StartError,
    SupervisionError,
    SupervisorNotRunning,
    TooManyRestarts,
)
from ._events import (
    ChildExited,
    ChildStarted,
    ChildStartFailed,
    Event,
    ExitReason,
    ReloadApplied,
    ReloadRejected,
    RestartScheduled,
    SupervisorGaveUp,
    SupervisorStopped,
)
from ._hub import EventStream
from ._process import ProcessExited, process
from ._run import run
from ._spec import (
    BRUTAL_KILL,
    INFINITY,
    AutoShutdown,
    Backoff,
    ChildSpec,
    Restart,
    Strategy,
    Supervisor,
    child,
)
from ._tree import ChildCounts, ChildInfo, Handle, Tree, start

__all__ = [
    "BRUTAL_KILL",
    "INFINITY",
    "AlreadyPresent",
    "AlreadyStarted",
    "AutoShutdown",
    "Backoff",
    "ChildCounts",
    "ChildExited",
    "ChildInfo",
    "ChildRestarting",
    "ChildRunning",
    "ChildSpec",
    "ChildStartFailed",
    "ChildStarted",
    "Clock",
    "Context",
    "Event",
    "EventStream",
    "ExitReason",
    "Handle",
    "LoopClock",
    "NotFound",
    "ProcessExited",
    "ReloadApplied",
    "ReloadError",
    "ReloadRejected",
    "Restart",
    "RestartScheduled",
    "Shutdown",
    "ShutdownTimeout",
    "SpecError",
    "StartError",
    "Status",
    "Strategy",
    "SupervisionError",
    "Supervisor",
    "SupervisorGaveUp",
    "SupervisorNotRunning",
    "SupervisorStopped",
    "TooManyRestarts",
    "Tree",
    "child",
    "current",
    "process",
    "ready",
    "run",
    "start",
]


def __getattr__(name: str) -> object:
    """``sv.testing`` without importing it up front (it is for tests, not for production)."""
    if name == "testing":
        import importlib

        return importlib.import_module("supervision.testing")
    raise AttributeError(f"module 'supervision' has no attribute {name!r}")


# Users see sv.X, not sv._module.X (as trio does).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("supervision._"):
        with contextlib.suppress(AttributeError, TypeError):
            _obj.__module__ = "supervision"
del _name, _obj, contextlib

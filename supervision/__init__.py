"""supervision: Erlang/OTP-style supervision trees for Python.

>>> import supervision as sv
>>> async def work(ctx): ...
>>> spec = sv.Supervisor([sv.child("work", work)], strategy="one_for_one")

See ``docs/`` for the concepts and every public name, and ``docs/architecture.md``
for the layers the code is made of.

Importing ``supervision`` loads nothing else: each public name loads its layer on
first use (PEP 562), so ``sv.Supervisor`` costs the pure core only, ``sv.start`` the
asyncio runtime, and the short-lived ``supervision status`` never loads the runtime.
"""

from __future__ import annotations

import contextlib
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # 'X as X': re-exported for type checkers (the names load lazily, see __getattr__)
    from . import health as health
    from . import lease as lease
    from . import ready as ready
    from . import stores as stores
    from ._core.dynamic import DynamicSupervisor as DynamicSupervisor
    from ._core.errors import AlreadyPresent as AlreadyPresent
    from ._core.errors import AlreadyStarted as AlreadyStarted
    from ._core.errors import ChildRestarting as ChildRestarting
    from ._core.errors import ChildRunning as ChildRunning
    from ._core.errors import HealthCheckFailed as HealthCheckFailed
    from ._core.errors import NotFound as NotFound
    from ._core.errors import ProcessExited as ProcessExited
    from ._core.errors import ReloadError as ReloadError
    from ._core.errors import Shutdown as Shutdown
    from ._core.errors import ShutdownTimeout as ShutdownTimeout
    from ._core.errors import SpecError as SpecError
    from ._core.errors import StartError as StartError
    from ._core.errors import SupervisionError as SupervisionError
    from ._core.errors import SupervisorNotRunning as SupervisorNotRunning
    from ._core.errors import TooManyChildren as TooManyChildren
    from ._core.errors import TooManyRestarts as TooManyRestarts
    from ._core.errors import WatchdogTimeout as WatchdogTimeout
    from ._core.events import ChildExited as ChildExited
    from ._core.events import ChildStarted as ChildStarted
    from ._core.events import ChildStartFailed as ChildStartFailed
    from ._core.events import Event as Event
    from ._core.events import ExitReason as ExitReason
    from ._core.events import HealthChanged as HealthChanged
    from ._core.events import LeaderAcquired as LeaderAcquired
    from ._core.events import LeaderLost as LeaderLost
    from ._core.events import ReloadApplied as ReloadApplied
    from ._core.events import ReloadRejected as ReloadRejected
    from ._core.events import RestartScheduled as RestartScheduled
    from ._core.events import SupervisorGaveUp as SupervisorGaveUp
    from ._core.events import SupervisorStopped as SupervisorStopped
    from ._core.listen import Listen as Listen
    from ._core.listen import listen as listen
    from ._core.settings import LogFile as LogFile
    from ._core.spec import BRUTAL_KILL as BRUTAL_KILL
    from ._core.spec import INFINITY as INFINITY
    from ._core.spec import AutoShutdown as AutoShutdown
    from ._core.spec import Backoff as Backoff
    from ._core.spec import ChildSpec as ChildSpec
    from ._core.spec import Restart as Restart
    from ._core.spec import RestartMode as RestartMode
    from ._core.spec import Strategy as Strategy
    from ._core.spec import Supervisor as Supervisor
    from ._core.spec import child as child
    from ._core.status import ChildCounts as ChildCounts
    from ._core.status import ChildInfo as ChildInfo
    from ._core.status import Status as Status
    from ._process.activation import listen_fds as listen_fds
    from ._process.logfile import log_file as log_file
    from ._process.logfile import prefixed as prefixed
    from ._process.spec import process as process
    from ._runtime.clock import Clock as Clock
    from ._runtime.clock import LoopClock as LoopClock
    from ._runtime.context import Context as Context
    from ._runtime.context import current as current
    from ._runtime.hub import EventStream as EventStream
    from ._runtime.tree import Handle as Handle
    from ._runtime.tree import Tree as Tree
    from ._runtime.tree import start as start
    from ._service.run import run as run

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
    "DynamicSupervisor",
    "Event",
    "EventStream",
    "ExitReason",
    "Handle",
    "HealthChanged",
    "HealthCheckFailed",
    "Listen",
    "LeaderAcquired",
    "LeaderLost",
    "LogFile",
    "LoopClock",
    "NotFound",
    "ProcessExited",
    "ReloadApplied",
    "ReloadError",
    "ReloadRejected",
    "Restart",
    "RestartMode",
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
    "TooManyChildren",
    "TooManyRestarts",
    "Tree",
    "WatchdogTimeout",
    "child",
    "current",
    "health",
    "listen",
    "listen_fds",
    "lease",
    "log_file",
    "prefixed",
    "process",
    "ready",
    "run",
    "start",
    "stores",
]

_WHERE: dict[str, str] = {
    "ready": ".ready",
    "health": ".health",
    "HealthCheckFailed": "._core.errors",
    "WatchdogTimeout": "._core.errors",
    "HealthChanged": "._core.events",
    "Listen": "._core.listen",
    "listen": "._core.listen",
    "RestartMode": "._core.spec",
    "listen_fds": "._process.activation",
    "stores": ".stores",
    "lease": ".lease",
    "AlreadyPresent": "._core.errors",
    "AlreadyStarted": "._core.errors",
    "ChildRestarting": "._core.errors",
    "ChildRunning": "._core.errors",
    "NotFound": "._core.errors",
    "ProcessExited": "._core.errors",
    "ReloadError": "._core.errors",
    "Shutdown": "._core.errors",
    "ShutdownTimeout": "._core.errors",
    "SpecError": "._core.errors",
    "StartError": "._core.errors",
    "SupervisionError": "._core.errors",
    "SupervisorNotRunning": "._core.errors",
    "TooManyChildren": "._core.errors",
    "TooManyRestarts": "._core.errors",
    "DynamicSupervisor": "._core.dynamic",
    "ChildExited": "._core.events",
    "ChildStartFailed": "._core.events",
    "ChildStarted": "._core.events",
    "Event": "._core.events",
    "ExitReason": "._core.events",
    "LeaderAcquired": "._core.events",
    "LeaderLost": "._core.events",
    "ReloadApplied": "._core.events",
    "ReloadRejected": "._core.events",
    "RestartScheduled": "._core.events",
    "SupervisorGaveUp": "._core.events",
    "SupervisorStopped": "._core.events",
    "AutoShutdown": "._core.spec",
    "BRUTAL_KILL": "._core.spec",
    "Backoff": "._core.spec",
    "ChildSpec": "._core.spec",
    "INFINITY": "._core.spec",
    "Restart": "._core.spec",
    "Strategy": "._core.spec",
    "Supervisor": "._core.spec",
    "child": "._core.spec",
    "ChildCounts": "._core.status",
    "ChildInfo": "._core.status",
    "Status": "._core.status",
    "LogFile": "._core.settings",
    "log_file": "._process.logfile",
    "prefixed": "._process.logfile",
    "process": "._process.spec",
    "Clock": "._runtime.clock",
    "LoopClock": "._runtime.clock",
    "Context": "._runtime.context",
    "current": "._runtime.context",
    "EventStream": "._runtime.hub",
    "Handle": "._runtime.tree",
    "Tree": "._runtime.tree",
    "start": "._runtime.tree",
    "run": "._service.run",
}
"""Where each public name lives: the module it is loaded from, relative to this package."""

_MODULES = frozenset({"ready", "health", "stores", "lease"})
"""Public names that are modules themselves (``sv.ready``, ``sv.stores``, ``sv.lease``)."""


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use; ``sv.testing`` too (it is for tests)."""
    if name == "testing":
        return importlib.import_module("supervision.testing")
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'supervision' has no attribute {name!r}")
    if name in _MODULES:
        value = importlib.import_module(where, __name__)
    else:
        module = importlib.import_module(where, __name__)
        # Every public name of that module at once. Users see sv.X, not
        # sv._layer.module.X (as trio does).
        for other, place in _WHERE.items():
            if place == where:
                obj = getattr(module, other)
                if getattr(obj, "__module__", "").startswith("supervision._"):
                    with contextlib.suppress(AttributeError, TypeError):
                        obj.__module__ = "supervision"
                globals()[other] = obj
        value = globals()[name]
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "testing"})

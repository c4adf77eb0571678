"""Errors carry structure: ``.path`` on every error about a child or a supervisor, and
one table to and from the control protocol's wire form."""

from __future__ import annotations

import pytest

import supervision as sv
from supervision._core.errors import REFUSALS, PathError, RequestError, from_wire, to_wire
from supervision._core.machine import SupervisorCore
from supervision._core.messages import DeleteChild, Init, Reply, RestartChild, Start, StartDone, TerminateChild


async def work(ctx: sv.Context) -> None: ...


@pytest.mark.parametrize("cls", sorted(REFUSALS.values(), key=lambda cls: cls.__name__))
def test_each_refusal_names_its_path_and_travels_as_itself(cls: type[PathError]) -> None:
    error = cls.at(("db", "pool"), "a reason")
    assert error.path == ("db", "pool") and str(error) == "db/pool: a reason"
    assert isinstance(error, sv.SupervisionError)
    wire = to_wire(error)
    assert wire == {"type": cls.__name__, "message": "db/pool: a reason", "path": "db/pool"}
    back = from_wire(wire)
    assert type(back) is cls and back.path == ("db", "pool") and str(back) == str(error)


def test_the_public_refusals_are_the_table() -> None:
    assert set(REFUSALS) == {
        "NotFound",
        "AlreadyPresent",
        "AlreadyStarted",
        "ChildRunning",
        "ChildRestarting",
        "SupervisorNotRunning",
    }
    assert all(getattr(sv, name) is cls for name, cls in REFUSALS.items())
    assert issubclass(sv.NotFound, LookupError)


def test_other_errors_travel_as_request_errors_of_their_type() -> None:
    start = sv.StartError(("web",), "failed to start")
    assert to_wire(start) == {"type": "StartError", "message": "web: failed to start", "path": "web"}
    back = from_wire(to_wire(start))
    assert isinstance(back, RequestError) and back.type == "StartError" and back.path == ("web",)
    root = from_wire(to_wire(sv.SupervisorNotRunning("the tree has stopped", path=())))
    assert isinstance(root, sv.SupervisorNotRunning) and root.path == ()
    assert to_wire(RequestError("BadRequest", "not JSON")) == {"type": "BadRequest", "message": "not JSON"}
    unknown = from_wire({"type": "SomethingNew", "message": "m"})
    assert isinstance(unknown, RequestError) and unknown.type == "SomethingNew" and unknown.path is None
    assert isinstance(from_wire(None), RequestError)


def test_the_core_refuses_with_the_childs_path() -> None:
    core = SupervisorCore(sv.Supervisor([sv.child("a", work)]), path=("db",))
    effects = core.handle(Init(), 0.0)
    start = effects[-1]
    assert isinstance(start, Start)
    core.handle(StartDone(start.id, start.token, 1), 0.0)
    refusals = {
        type(command).__name__: command for command in (RestartChild("a"), DeleteChild("a"), TerminateChild("nope"))
    }
    for name, command in refusals.items():
        (reply,) = [e for e in core.handle(command, 1.0) if isinstance(e, Reply)]
        assert isinstance(reply.error, PathError), name
        assert reply.error.path == ("db", "nope" if name == "TerminateChild" else "a"), name

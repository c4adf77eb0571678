"""An event's log line is written at the loop's next turn, but it carries the time the
event happened: a long synchronous stretch (a group of instances starting in one go)
does not shift the times of the lines it logs."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import supervision as sv
from supervision._runtime.hub import EventHub

HOLD = 0.25


async def test_a_deferred_line_carries_the_time_of_its_event(caplog: pytest.LogCaptureFixture) -> None:
    hub = EventHub()
    with caplog.at_level(logging.INFO, logger="supervision"):
        before = time.time()
        hub.publish(sv.ChildStarted(path=("web",), time=0.0, starts=1, pid=None))
        time.sleep(HOLD)  # the loop's next turn comes late, as after a long group start
        hub.publish(sv.ChildStarted(path=("db",), time=0.0, starts=1, pid=None))
        assert not caplog.records  # written at the next turn
        await asyncio.sleep(0)
        after = time.time()
    web, db = caplog.records
    assert web.getMessage().startswith("web: ChildStarted") and db.getMessage().startswith("db: ChildStarted")
    assert before <= web.created < before + HOLD / 2  # its own time, not the turn's
    assert before + HOLD <= db.created <= after
    for record in (web, db):
        assert record.levelno == logging.INFO
        assert record.msecs == pytest.approx((record.created - int(record.created)) * 1000)
        assert record.__dict__["supervision_event"].path in (("web",), ("db",))


def test_without_a_loop_the_line_is_written_at_once(caplog: pytest.LogCaptureFixture) -> None:
    hub = EventHub()
    with caplog.at_level(logging.INFO, logger="supervision"):
        hub.publish(sv.ChildStarted(path=("web",), time=0.0, starts=1, pid=None))
    assert [r.getMessage() for r in caplog.records] == ["web: ChildStarted starts=1"]

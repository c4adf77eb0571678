"""Leader-gated supervisors in the asyncio runtime: the rules of ``_gate``, executed.

A :class:`GatedIncarnation` is the incarnation of a nested supervisor whose spec
has ``leader=``. It reports itself started at once (as a standby) and runs a
session task: campaign; on winning, load the subtree's snapshots from the
lease's shared store, route the subtree's saves there fenced by the term, and
start a supervisor runner for the children; on losing, stop that runner at
once and campaign again. Only this task touches the election.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .._core import Init, Outcome, Phase, StopDone, StopSupervisor
from .._errors import format_path
from .._events import ExitReason
from .._runtime import SupervisorIncarnation, SupervisorRunner
from .._spec import Supervisor
from ..stores._interface import SnapshotStore
from ..stores._paths import DurablePaths, Route
from ._gate import LeaderAcquired, LeaderElection, LeaderLost, LeaderTerm, Lease, Role, guard, spec_stop_time

logger = logging.getLogger("supervision")


class GatedIncarnation(SupervisorIncarnation):
    """A nested supervisor that runs its children only while its root leads."""

    kind = "supervisor"
    __slots__ = ("election", "role", "session", "shared", "term")

    def start(self) -> Any:
        spec = self.spec.start
        assert isinstance(spec, Supervisor)
        lease: Lease | None = getattr(spec, "leader", None)
        assert lease is not None
        runtime = self.runner.runtime
        self.role = Role.STANDBY
        self.term: LeaderTerm | None = None
        self.election: LeaderElection = lease.election(guard=guard(spec_stop_time(spec.children)))
        self.shared: SnapshotStore | None = lease.snapshot_store()
        paths = runtime.store
        if isinstance(paths, DurablePaths):
            # No fence until a term begins: nothing is written for the subtree meanwhile.
            paths.routes[self.path] = Route(self.shared)
        # A runner that never starts: what handles see while this root is a standby.
        self.child = SupervisorRunner(runtime, spec, self.path)
        self.session = runtime.loop.create_task(self._session(lease), name=f"leader {format_path(self.path)}")
        self.session.add_done_callback(self._session_ended)
        return self._done()

    def _session_ended(self, session: asyncio.Task[None]) -> None:
        if session.cancelled() or self.stopping:
            return
        error = session.exception()
        if error is not None:  # a bug, or the lease's store refused to open: this supervisor crashed
            logger.error("%s: leader session failed: %r", format_path(self.path), error)
            self.runner.child_exited(self, Outcome(ExitReason.CRASH, error))

    @property
    def fence(self) -> int | None:
        return self.term.fence if self.term is not None and self.role is Role.LEADER else None

    async def _session(self, lease: Lease) -> None:
        runtime = self.runner.runtime
        shared = self.shared
        assert shared is not None
        await shared.open()
        while True:
            term = await self.election.campaign()
            paths = runtime.store
            if isinstance(paths, DurablePaths):
                paths.routes[self.path].fence = term.token
                try:
                    await shared.flush()
                    paths.load(await shared.items(), under=self.path)
                except Exception as exc:  # etcd went away between winning and reading: try again
                    logger.warning("%s: could not read the shared snapshots: %r", format_path(self.path), exc)
                    await self.election.resign()
                    continue
            if not term.held():
                continue
            spec = self.spec.start
            assert isinstance(spec, Supervisor)
            runner = SupervisorRunner(runtime, spec, self.path)
            self.child, self.term, self.role = runner, term, Role.LEADER
            runtime.hub.publish(
                LeaderAcquired(path=self.path, time=runtime.clock.now(), name=lease.name, fence=term.fence)
            )
            runner.feed(Init())
            lost: asyncio.Future[Any] = asyncio.ensure_future(term.wait_lost())
            await asyncio.wait([lost, runner.done], return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()
            if runner.finished is not None and term.held():
                # The children stopped by themselves: exit as a supervisor does.
                self.role = Role.STANDBY
                exit = runner.finished
                if not self.stopping:
                    await self._release()
                    self.runner.child_exited(self, Outcome(exit.reason, exit.error))
                return
            # Lost: stop the children at once (their shutdown fits in the guard).
            if runner.finished is None:
                runner.feed(StopSupervisor())
                await asyncio.shield(runner.done)
            await shared.flush()  # refused by etcd if the lease is really gone
            self.role = Role.STANDBY
            runtime.hub.publish(
                LeaderLost(
                    path=self.path,
                    time=runtime.clock.now(),
                    name=lease.name,
                    fence=term.fence,
                    reason=term.reason or "",
                )
            )
            self.child = SupervisorRunner(runtime, spec, self.path)

    async def _release(self) -> None:
        """Resign, and close the election and the shared store (once)."""
        if self.shared is None:
            return
        shared, self.shared = self.shared, None
        try:
            await shared.flush()  # the last saves, while the fence still holds
        finally:
            await self.election.close()
            await shared.close()
        paths = self.runner.runtime.store
        if isinstance(paths, DurablePaths):
            paths.routes.pop(self.path, None)

    def stop(self) -> StopDone | Any:
        self.stopping = True
        return self._stop()

    async def _stop(self) -> StopDone:
        runner = self.child
        if runner.finished is None and runner.core.phase is not Phase.NEW:
            runner.feed(StopSupervisor())
            await asyncio.shield(runner.done)
        self.session.cancel()
        await asyncio.wait([self.session])
        self.role = Role.STANDBY
        await self._release()
        finished = runner.finished
        if finished is None:
            return self._stopped(Outcome(ExitReason.SHUTDOWN))
        return self._stopped(Outcome(finished.reason, finished.error))

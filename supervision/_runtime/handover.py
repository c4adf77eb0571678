"""The runtime's side of a re-exec (the handover itself is ``_reload.reexec``'s).

In the old image, :func:`reexec` stops the in-process workers (they can save a last
snapshot), collects what the new image needs from the running tree (its OS children's
records, which declared children are terminated or gone) and hands it to
``_reload.reexec.execute``. In the new image, :func:`adopt` and :func:`settle` put the
handover's initial state into the tree being started: an adopted process "starts" by
adoption, with its pid; a child terminated before the re-exec starts as nothing and is
terminated again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from .._core.dynamic_machine import DynamicCore
from .._core.errors import ReloadError, SupervisionError
from .._core.messages import RestartChild, StopDone, TerminateChild
from .._core.paths import Path, format_path
from .._core.status import Phase, Status
from .._process.adopt import ProcessRecord
from .._reload import reexec as mechanism
from .._reload.reexec import BLOCKED, Handover, Host, document, encode_store, execute, host_of
from .incarnation import WorkerIncarnation
from .process import ProcessIncarnation

if TYPE_CHECKING:
    from .runner import SupervisorRunner
    from .tree import Tree

logger = logging.getLogger("supervision")


async def reexec(tree: Tree) -> NoReturn:
    """Replace this process's program with the code on disk, keeping the OS
    children (see the module docstring). Returns only by raising ``ReloadError``:
    the re-exec was refused (the check failed, a stop began) or ``execve``
    failed; then the tree runs on in this image."""
    if not _running(tree):
        raise ReloadError("re-exec refused: the tree is not running")
    if threading.current_thread() is not threading.main_thread():
        raise ReloadError("re-exec refused: the event loop must run in the main thread")
    host = host_of(tree)
    began = time.monotonic()
    encode_store(tree.store)  # every snapshot can be serialised (a dry run)
    await mechanism.check(tree.source)
    checked = time.monotonic()
    stopped = await _stop_workers(tree)
    store = tree._runtime.snapshot_store
    if store is not None:  # what the workers saved last is written before the exec
        await store.flush()
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED)
        try:
            for _ in range(3):  # signals caught just before the block: their callbacks run now
                await asyncio.sleep(0)
            why = _cancel_reason(tree, host)
            if why is not None:
                raise ReloadError(f"re-exec cancelled: {why}")
            timings = {"check": checked - began, "workers": time.monotonic() - checked}
            state, fds = collect(tree, host)
            execute(state, fds, previous, timings)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    except ReloadError:
        if _cancel_reason(tree, host) is None:
            await _resume_workers(tree, stopped)
        raise


def _running(tree: Tree) -> bool:
    return not tree.stopped and tree.runner_at(()).core.phase is Phase.RUNNING


def _cancel_reason(tree: Tree, host: Host | None) -> str | None:
    if not _running(tree):
        return "the tree is stopping"
    return host.cancel_reason() if host is not None else None


def collect(tree: Tree, host: Host | None) -> tuple[dict[str, Any], list[int]]:
    """What the new image needs, as JSON values, and the fds to keep open."""
    processes: list[ProcessRecord] = []
    terminated: list[Path] = []
    gone: list[Path] = []
    runners = _walk(tree, processes, terminated, gone)
    dynamic = [(runner.path, runner.core.children_args()) for runner in runners if isinstance(runner.core, DynamicCore)]
    held = tree._runtime.sockets.held()
    sockets = [(path, listen, sock.fileno()) for path, found in held.items() for listen, sock in found.items()]
    return document(tree.source, tree.store, processes, terminated, gone, host, dynamic, sockets)


def _walk(
    tree: Tree, processes: list[ProcessRecord], terminated: list[Path], gone: list[Path]
) -> list[SupervisorRunner]:
    root = tree.runner_at(())
    runners = [root]
    for runner, child, incarnation in tree.walk():
        if child.status is Status.TERMINATED:
            if not child.dynamic:
                terminated.append(child.path)
            continue
        if isinstance(incarnation, ProcessIncarnation) and child.status is not Status.RESTARTING:
            record = incarnation.handover(child.dynamic)
            if record is not None:
                processes.append(record)
        nested = runner.child_runner(child.spec.id)
        if nested is not None:
            runners.append(nested)
    # Declared, but gone from the running supervisor (deleted, or temporary and exited).
    for runner in runners:
        gone.extend((*runner.path, spec.id) for spec in runner.spec.children if runner.child(spec.id) is None)
    return runners


def _workers(tree: Tree) -> Iterator[WorkerIncarnation]:
    """The running workers of the tree, in start order (depth first)."""
    for _, child, incarnation in tree.walk():
        if (
            isinstance(incarnation, WorkerIncarnation)
            and child.status is Status.RUNNING
            and not incarnation.task.done()
        ):
            yield incarnation


async def _stop_workers(tree: Tree) -> list[WorkerIncarnation]:
    """Stop the running workers right to left, behind the core's back (they are
    started again by the new image, or by :func:`_resume_workers`)."""
    workers = list(_workers(tree))
    for incarnation in reversed(workers):
        done = incarnation.stop()
        if not isinstance(done, StopDone):
            await done
    return workers


async def _resume_workers(tree: Tree, workers: list[WorkerIncarnation]) -> None:
    """The exec did not happen: start the workers stopped for it again (an
    operator's terminate and restart, not counted against the intensity)."""
    for incarnation in workers:
        runner = incarnation.runner
        found = runner.child(incarnation.id)
        if found is None or found[1] is not incarnation or runner.finished is not None:
            continue  # restarted or stopped meanwhile
        try:
            await runner.call(TerminateChild(incarnation.id))
            await runner.call(RestartChild(incarnation.id))
        except SupervisionError as exc:
            logger.warning("%s: not started again after the failed re-exec: %s", format_path(incarnation.path), exc)


async def settle(handover: Handover, tree: Tree) -> None:
    """After the new image's tree started (or failed to): stop the processes it did
    not adopt, and sum up."""
    tree._runtime.resume = None
    await handover.release_unclaimed()
    handover.summarise()

"""Re-exec: the OS process children that the previous image of this process started.

``tree.reexec()`` (see ``_reload.reexec`` and ``_runtime.handover``) replaces the program of the supervisor
with ``execve``: same pid, so its OS children stay its children. The old image
records each one as a :class:`ProcessRecord`; the new image turns each record
into an :class:`Adoption` before its tree starts, and the tree "starts" the
child at that path by adopting it (``ProcessIncarnation``), with the same pid.

A pid is only a name, and the kernel recycles names. A handed-over pid is
adopted only if it still names the process we started: we open a pidfd for it
(which pins that process, zombie or not) and *then* check that its start time
(``/proc/PID/stat`` field 22) and its parent are the recorded ones; a recycled
pid has another start time. Our own unreaped children cannot be recycled, so
in practice the check fails only when something else reaped our child. Such
a child is *lost*: it is started and at once reported as crashed (restart
rules apply). A child that exited during the handover is a zombie: it is
adopted, reaped at once and its exit handled as any exit.

Until a tree claims an adoption, its exit is kept; its output is forwarded and
its notify socket read from the moment of adoption, so nothing stalls while the
new image starts.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
from dataclasses import dataclass
from typing import Any

from .. import ready as _ready
from .._core.listen import Listen
from .._core.paths import Path, format_path
from .._core.settings import LogFile, output_json
from .._core.spec import BRUTAL_KILL, INFINITY, ChildSpec, Process, ShutdownSpec
from .logfile import FileOutput
from .notify import NotifySocket
from .output import OutputSink, PrefixedOutput, write_prefixed
from .proc import read_stat, set_done, signal_group, start_time
from .reaper import ExitCallback, Reaper

logger = logging.getLogger("supervision")


def launch(spec: ChildSpec) -> dict[str, Any]:
    """What a process child was started with, as JSON values: a handed-over
    process is adopted only by a spec that would start the same thing."""
    start = spec.start
    assert isinstance(start, Process)
    extra: dict[str, Any] = {}  # only when set, so that a record of an older image still matches
    if spec.sockets:
        extra["sockets"] = [listen_json(listen) for listen in spec.sockets]
    if spec.watchdog is not None:
        extra["watchdog"] = spec.watchdog
    return {
        **extra,
        "argv": list(start.argv),
        "cwd": start.cwd,
        "env": None if start.env is None else [list(pair) for pair in start.env],
        "inherit_env": start.inherit_env,
        "output": output_json(start.output),
        "pdeathsig": start.pdeathsig,
        "notify": isinstance(start.ready, _ready.Notify),
        "settings": start.settings.to_json(),
    }


def listen_json(listen: Listen) -> list[Any]:
    """A held socket's spec as JSON values (``Listen`` again with :func:`listen_from_json`)."""
    return [listen.address, listen.name, listen.mode, listen.backlog, listen.reuse_port]


def listen_from_json(data: list[Any]) -> Listen:
    address, name, mode, backlog, reuse_port = data
    return Listen(str(address), str(name), None if mode is None else int(mode), int(backlog), bool(reuse_port))


def _adopt_output(loop: asyncio.AbstractEventLoop, record: ProcessRecord, sink: OutputSink) -> PrefixedOutput:
    """The output pipes of a handed-over process, read the way its launch says: to
    its log file, or prefixed (with timestamps or not)."""
    assert record.output is not None
    given = record.launch.get("output")
    if isinstance(given, dict) and "file" in given:
        spec = LogFile(given["file"], given.get("max_bytes"), given.get("backups", 5), bool(given.get("timestamps")))
        return FileOutput.adopt_file(loop, record.path, record.output, record.partial, spec, sink)
    timestamps = isinstance(given, dict) and bool(given.get("timestamps"))
    return PrefixedOutput.adopt(loop, record.path, record.output, record.partial, sink, timestamps)


def encode_shutdown(shutdown: ShutdownSpec) -> float | str | None:
    if shutdown is BRUTAL_KILL:
        return "brutal_kill"
    if shutdown is INFINITY:
        return None
    return float(shutdown)


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One OS process child, as the old image hands it over."""

    path: Path
    pid: int
    start_time: int
    invocation: bytes
    """Its ``SUPERVISION_INVOCATION_ID=...`` environment entry (finds what it leaves behind)."""
    launch: dict[str, Any]
    stop_signal: int
    shutdown: float | str | None
    """Seconds, ``"brutal_kill"``, or None for infinity."""
    ready: bool
    """False while its readiness check was still pending."""
    output: tuple[int, int] | None = None
    """The read ends of its stdout and stderr pipes (``-1``: closed already)."""
    partial: tuple[bytes, bytes] = (b"", b"")
    notify: tuple[int, str] | None = None
    """Its notify socket: fd and address."""
    dynamic: bool = False

    def fds(self) -> list[int]:
        """The fds the old image keeps open across the exec for this child."""
        found = [fd for fd in self.output or () if fd >= 0]
        if self.notify is not None:
            found.append(self.notify[0])
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "path": list(self.path),
            "pid": self.pid,
            "start_time": self.start_time,
            "invocation": self.invocation.decode(),
            "launch": self.launch,
            "stop_signal": self.stop_signal,
            "shutdown": self.shutdown,
            "ready": self.ready,
            "output": None if self.output is None else list(self.output),
            "partial": [base64.b64encode(part).decode() for part in self.partial],
            "notify": None if self.notify is None else list(self.notify),
            "dynamic": self.dynamic,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        output = data["output"]
        notify = data["notify"]
        out, err = (base64.b64decode(part) for part in data["partial"])
        return cls(
            path=tuple(data["path"]),
            pid=int(data["pid"]),
            start_time=int(data["start_time"]),
            invocation=data["invocation"].encode(),
            launch=data["launch"],
            stop_signal=int(data["stop_signal"]),
            shutdown=data["shutdown"],
            ready=bool(data["ready"]),
            output=None if output is None else (int(output[0]), int(output[1])),
            partial=(out, err),
            notify=None if notify is None else (int(notify[0]), str(notify[1])),
            dynamic=bool(data["dynamic"]),
        )


def verify(pid: int, expected_start: int) -> tuple[int | None, str]:
    """A pidfd for ``pid`` if it still names the child we started (the recorded
    start time, and we are its parent), else ``(None, why)``.

    The pidfd is opened first: it pins whichever process has the pid now, and
    the checks that follow are about that process (if it died and the pid was
    recycled in between, the start time differs and we refuse: a false negative
    at worst, never a wrong adoption)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return None, "it was gone"
    stat = read_stat(pid)
    if start_time(pid) != expected_start or stat is None or stat[1] != os.getpid():
        os.close(pidfd)
        return None, "its pid names another process now"
    return pidfd, ""


def _nothing() -> None:
    pass


class Adoption:
    """A handed-over process child, watched by the reaper until a tree claims it."""

    def __init__(
        self, record: ProcessRecord, loop: asyncio.AbstractEventLoop, reaper: Reaper, sink: OutputSink = write_prefixed
    ) -> None:
        self.record = record
        self.loop = loop
        self.reaper = reaper
        self.pid = record.pid
        self.lost: str | None = None
        """Why it could not be adopted (None: adopted)."""
        self.reaped = False
        self.claimed = False
        self._exit: tuple[int, int] | None = None
        self._listener: ExitCallback | None = None
        label = format_path(record.path)
        self.output: PrefixedOutput | None = None
        self.notify: NotifySocket | None = None
        if record.output is not None:
            self.output = _adopt_output(loop, record, sink)
        if record.notify is not None:
            self.notify = NotifySocket(loop, label, _nothing, adopt=record.notify)
            self.notify.leader = record.pid
        pidfd, why = verify(record.pid, record.start_time)
        if pidfd is None:
            self.lost = why
            self.reaped = True  # never signal that pid
        else:
            reaper.adopt(record.pid, pidfd, self._on_reaped, record.start_time)

    def claim(self, listener: ExitCallback) -> None:
        """From now on, ``listener`` gets the exit (soon, if it exited already)."""
        self.claimed = True
        if self._exit is not None:
            self.loop.call_soon(listener, *self._exit)
        else:
            self._listener = listener

    def _on_reaped(self, code: int, status: int) -> None:
        self.reaped = True
        if self._listener is not None:
            self._listener(code, status)
        else:
            self._exit = (code, status)

    def release(self) -> None:
        """Forward what its pipes hold, then close them and its notify socket."""
        if self.output is not None:
            self.output.drain_and_close()
        if self.notify is not None:
            self.notify.close()

    async def terminate(self) -> None:
        """Stop it for good (the new tree does not adopt it): its stop signal to
        its process group, its ``shutdown``, SIGKILL; reap it and what it left
        behind; then close its pipes and socket."""
        record = self.record
        try:
            if not self.reaped or self._exit is not None:
                exited: asyncio.Future[None] = self.loop.create_future()
                self.claim(lambda code, status: set_done(exited))
                timeout: float | None = 0.0
                if record.shutdown != "brutal_kill":
                    self._signal(record.stop_signal)
                    timeout = None if record.shutdown is None else float(record.shutdown)
                if timeout is None or timeout > 0:
                    await asyncio.wait({exited}, timeout=timeout)
                if not exited.done():
                    self._signal(signal.SIGKILL)
                await exited
            if self.lost is None:
                leftovers = self.reaper.leftovers(self.pid, record.invocation, record.start_time)
                if leftovers:
                    await self.reaper.kill_and_reap(leftovers)
        finally:
            self.release()

    def _signal(self, signum: int) -> None:
        if not self.reaped:  # once reaped, the pid (and group id) may be reused
            signal_group(self.pid, signum)

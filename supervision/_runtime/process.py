"""The runtime of a process child: one incarnation is one OS process.

Start: spawn (``_process.spawn``) in a new session, watch through the central reaper's
pidfd (``_process.reaper``), then wait for the readiness check, if any. Stop: the stop
signal to the process group, ``shutdown`` seconds, then SIGKILL to the group.
Exit: reaped by the reaper; what the service left behind is killed and reaped;
the output pipes are drained; only then is the exit reported to the supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from collections.abc import Awaitable
from typing import Any

from .. import ready as _ready
from .._core.durable import DurablePaths
from .._core.errors import ProcessExited, ProcessLost
from .._core.events import ExitReason
from .._core.messages import Outcome, StopDone
from .._core.paths import Path, format_path
from .._core.settings import LogFile, Prefixed
from .._core.spec import BRUTAL_KILL, INFINITY, Process
from .._process.adopt import Adoption, ProcessRecord, encode_shutdown, launch
from .._process.helper import PID_WIDTH
from .._process.logfile import FileOutput
from .._process.notify import NotifySocket
from .._process.output import PrefixedOutput
from .._process.proc import boot_ticks, set_done, signal_group, signal_name, start_time
from .._process.reaper import Reaper, reaper, spawner
from .._process.settings import LIMITS, NOTHING, Prepared, SetLimit, prepare
from .._process.spawn import PRIVATE_VARIABLES
from .health import watchdog_message
from .incarnation import Completion, Incarnation

logger = logging.getLogger("supervision")

INVOCATION_VARIABLE = "SUPERVISION_INVOCATION_ID"
_MAX_CLEANUP_ROUNDS = 5
_PID_PLACEHOLDER = b" " * PID_WIDTH  # the exec helper writes the child's pid over it (see _process.helper)

# The RLIMIT_NOFILE every child gets when ``supervision run`` raised its own soft
# limit (``_service.run.raise_nofile``): the limits it was started with, as systemd
# gives its services theirs while it raises its own. None: children inherit ours.
_child_nofile: SetLimit | None = None


def set_child_nofile(limits: tuple[int | None, int | None] | None) -> None:
    """Give every child started from now on this (soft, hard) ``RLIMIT_NOFILE``,
    unless its own ``limits`` set one (in a pair, None is infinity; None for the pair:
    children inherit the supervisor's)."""
    global _child_nofile
    _child_nofile = None if limits is None else SetLimit(LIMITS["nofile"], "nofile", *limits)


def _with_child_nofile(settings: Prepared) -> Prepared:
    step = _child_nofile
    if step is None or any(isinstance(s, SetLimit) and s.resource == step.resource for s in settings.steps):
        return settings
    return Prepared(settings.env, (step, *settings.steps))


_handed_on: dict[tuple[int, Path], PrefixedOutput] = {}
"""The pipes of a child that just exited, while its exit is being reported: a restart
made from that report (at once, in the same call) takes them (see ``_finish``)."""


def environment(spec: Process, invocation: str, settings: Prepared = NOTHING) -> dict[bytes, bytes]:
    """The child's environment: ours (without our own ``NOTIFY_SOCKET``) or
    nothing, then what its settings add (the user's ``HOME``..., then its
    environment files), then ``spec.env``, then its invocation id.

    Built as bytes: copying ``os.environb`` is several times cheaper than
    decoding ``os.environ`` and encoding it again, once per spawn; copying the
    bytes dictionary behind both (``_data``, kept current by every change
    through either) is a hundred times cheaper still than iterating the mapping."""
    env = _own_environment() if spec.inherit_env else {}
    for name in PRIVATE_VARIABLES:  # the supervisor's (systemd's), never the child's
        env.pop(name, None)
    for key, value in settings.env.items():
        env[os.fsencode(key)] = os.fsencode(value)
    if spec.env:
        for key, value in spec.env:
            env[os.fsencode(key)] = os.fsencode(value)
    env[INVOCATION_VARIABLE.encode()] = invocation.encode()
    return env


def _own_environment() -> dict[bytes, bytes]:
    data = getattr(os.environb, "_data", None)  # POSIX: bytes -> bytes, what os.environ* show
    if isinstance(data, dict):
        return data.copy()
    return dict(os.environb)


class ProcessIncarnation(Incarnation):
    """One run of a process child, from spawn to reaping."""

    kind = "process"
    __slots__ = (
        "_born",
        "_pid",
        "adoption",
        "early_period",
        "exited",
        "injected",
        "kill_timer",
        "marker",
        "notify",
        "output",
        "ready_future",
        "reaped",
        "reaper",
    )

    def __init__(self, *args: Any, adoption: Adoption | None = None) -> None:
        super().__init__(*args)
        self._pid: int | None = None
        self._born: int | None = None  # the start time of the process (see ``proc.start_time``)
        self.adoption = adoption
        """Re-exec: the handed-over process this incarnation adopts instead of spawning."""

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def process(self) -> Process:
        start = self.spec.start
        assert isinstance(start, Process)
        return start

    # -- start --------------------------------------------------------------------

    def start(self) -> Completion | Awaitable[Completion]:
        if self.adoption is not None:
            return self._adopt(self.adoption)
        loop = self.runner.runtime.loop
        spec = self.process
        self.reaped = False
        self.injected: BaseException | None = None
        self.output: PrefixedOutput | None = None
        self.notify: NotifySocket | None = None
        self.ready_future: asyncio.Future[None] | None = None
        self.kill_timer: asyncio.TimerHandle | None = None
        self.early_period: float | None = None
        self.exited: asyncio.Future[Outcome] = loop.create_future()
        self.reaper: Reaper = reaper()
        invocation = secrets.token_hex(16)
        self.marker = f"{INVOCATION_VARIABLE}={invocation}".encode()
        label = format_path(self.path)
        log_fd = -1
        first: dict[bytes, bytes] = {}  # the variables the exec helper fills with the child's pid
        listen: tuple[int, ...] = ()
        try:
            settings = _with_child_nofile(prepare(spec.settings))  # OSError: no such user, a missing env file
            env = environment(spec, invocation, settings)
            paths = self.runner.runtime.store
            fence = paths.fence(self.path) if isinstance(paths, DurablePaths) else None
            if fence is not None:  # a leader-gated child: the fencing token of its term
                env[b"SUPERVISION_FENCE"] = str(fence.revision).encode()
            if self.spec.sockets:
                listen = self._sockets(env)
                first[b"LISTEN_PID"] = _PID_PLACEHOLDER
            if self.spec.watchdog is not None:
                first[b"WATCHDOG_PID"] = _PID_PLACEHOLDER
                env[b"WATCHDOG_USEC"] = b"%d" % round(self.spec.watchdog * 1_000_000)
            if isinstance(spec.ready, _ready.Notify) or self.spec.watchdog is not None:
                if isinstance(spec.ready, _ready.Notify):
                    self.ready_future = loop.create_future()
                self.notify = NotifySocket(loop, label, self._on_notify_ready)
                self.notify.on_message = self._on_notify_message
                env[b"NOTIFY_SOCKET"] = os.fsencode(self.notify.address)
            if first:  # first: the exec helper finds them by position
                for name in first:
                    env.pop(name, None)  # spec.env or an env_file cannot set them
                env = first | env
            stdout: int | None = None
            stderr: int | None = None
            output = spec.output
            if isinstance(output, LogFile):
                self.output = FileOutput(loop, self.path, output, self.runner.runtime.output)
            elif output == "prefix" or isinstance(output, Prefixed):
                timestamps = isinstance(output, Prefixed) and output.timestamps
                self.output = self._pipes(timestamps)
            elif output != "inherit":
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                log_fd = os.open(output, flags, 0o644)
                stdout = stderr = log_fd
            if self.output is not None:
                stdout, stderr = self.output.child_stdout, self.output.child_stderr
            born = boot_ticks()  # its start time, or a tick before (see _only_theirs)
            pid = spawner().spawn(
                spec.argv,
                spec.cwd,
                env,
                stdout,
                stderr,
                pdeathsig=spec.pdeathsig,
                steps=settings.steps,
                listen=listen,
                pid_variables=len(first),
            )
            try:
                self.reaper.watch(pid, self._on_reaped, born)
            except OSError:  # no pidfd (EMFILE...): do not leave it running unwatched
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise
        except Exception as exc:  # OSError mostly: missing program, bad cwd, unwritable log
            self._release()
            return self._failed(exc)
        finally:
            if log_fd >= 0:
                os.close(log_fd)
        self._pid = pid
        self._born = born
        if self.notify is not None:
            self.notify.leader = pid
        if self.output is not None:
            # A restarted child keeps the write ends for its next incarnation: no
            # wake-up at its exit for EOF (two fds more while it runs; a child
            # started once and never again has none).
            self.output.started(keep_child_ends=self.starts > 1 and type(self.output) is PrefixedOutput)
        if spec.ready is None:
            return self._done()
        return self._wait_ready(spec.ready)

    def _pipes(self, timestamps: bool) -> PrefixedOutput:
        """The pipes of the incarnation that just exited, if this start is its
        restart and they can serve (same sink and timestamps); else new ones."""
        runtime = self.runner.runtime
        found = _handed_on.pop((id(runtime), self.path), None)
        if found is not None and found.sink is runtime.output and found.timestamps == timestamps:
            return found
        if found is not None:
            found.drain_and_close()
        return PrefixedOutput(runtime.loop, self.path, runtime.output, timestamps)

    def _sockets(self, env: dict[bytes, bytes]) -> tuple[int, ...]:
        """The held sockets for this incarnation (bound now if new); their
        ``LISTEN_FDS`` and ``LISTEN_FDNAMES``."""
        pool = self.runner.runtime.sockets
        specs = self.spec.sockets
        held = pool.acquire(self.socket_owner, specs)
        pool.keep_only(self.socket_owner, specs)  # a reload changed them: the old ones go
        env[b"LISTEN_FDS"] = b"%d" % len(held)
        env[b"LISTEN_FDNAMES"] = ":".join(listen.name for listen in specs).encode()
        return tuple(sock.fileno() for sock in held)

    def _on_notify_message(self, key: str, value: str) -> None:
        monitor = self.monitor
        if monitor is not None and monitor.watchdog is not None:
            watchdog_message(monitor.watchdog, key, value)
        elif monitor is None and key == "WATCHDOG_USEC" and value.isdigit() and self.spec.watchdog is not None:
            self.early_period = int(value) / 1_000_000  # sent before (or with) READY=1: the clock starts then

    def _watchdog_period(self) -> float | None:
        return self.early_period if self.early_period is not None else self.spec.watchdog

    def _adopt(self, adoption: Adoption) -> Completion | Awaitable[Completion]:
        """Re-exec: "start" by adopting the process the previous image started
        (same pid, its output pipes and notify socket); see ``_process.adopt``."""
        self.adoption = None
        adoption.claimed = True
        loop = self.runner.runtime.loop
        spec = self.process
        self.reaped = False
        self.injected = None
        self.ready_future = None
        self.kill_timer = None
        self.early_period = None
        self.exited = loop.create_future()
        self.reaper = reaper()
        self.marker = adoption.record.invocation
        self.output = adoption.output
        self.notify = adoption.notify
        if adoption.lost is not None:
            # Gone, or not ours: "started", then reported crashed at once (after the start).
            self.reaped = True
            self.injected = ProcessLost(self.path, adoption.pid, adoption.lost)
            loop.call_soon(self._finish, None, None)
            return self._done()
        self._pid = adoption.pid
        self._born = adoption.record.start_time
        waiting = spec.ready is not None and not adoption.record.ready
        if self.notify is not None:
            self.notify.on_ready = self._on_notify_ready
            self.notify.on_message = self._on_notify_message
            if waiting and isinstance(spec.ready, _ready.Notify):
                self.ready_future = loop.create_future()
        adoption.claim(self._on_reaped)
        if not waiting:
            return self._done()
        assert spec.ready is not None
        return self._wait_ready(spec.ready)

    def handover(self, dynamic: bool) -> ProcessRecord | None:
        """Re-exec: this process as the new image needs it, or None if it has
        exited (or never ran)."""
        pid = self._pid
        if pid is None or self.reaped:
            return None
        started_at = start_time(pid)
        if started_at is None:
            return None
        output = notify = None
        partial = (b"", b"")
        if self.output is not None:
            output, partial = self.output.handover()
        if self.notify is not None:
            notify = (self.notify.fileno(), self.notify.address)
        return ProcessRecord(
            path=self.path,
            pid=pid,
            start_time=started_at,
            invocation=self.marker,
            launch=launch(self.spec),
            stop_signal=self.process.stop_signal,
            shutdown=encode_shutdown(self.spec.shutdown),
            ready=self.started,
            output=output,
            partial=partial,
            notify=notify,
            dynamic=dynamic,
        )

    def _on_notify_ready(self) -> None:
        if self.ready_future is not None and not self.ready_future.done():
            self.ready_future.set_result(None)

    async def _wait_ready(self, check: _ready.Check) -> Completion:
        loop = self.runner.runtime.loop
        waiter: asyncio.Future[None]
        timer: asyncio.TimerHandle | None = None
        if isinstance(check, _ready.Notify):
            assert self.ready_future is not None
            waiter = self.ready_future
        elif isinstance(check, _ready.Port):
            waiter = loop.create_task(_connect(check), name=f"ready {format_path(self.path)}")
        else:
            waiter = loop.create_future()
            timer = loop.call_later(check.seconds, set_done, waiter)
        timeout = self.spec.ready_timeout
        try:
            pending: set[asyncio.Future[Any]] = {waiter, self.exited}
            await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if timer is not None:
                timer.cancel()
            if not waiter.done():
                waiter.cancel()
                await asyncio.wait({waiter})
        if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
            completion = self._done()
            if self.exited.done():  # ready, then exited at once: report the exit after the start
                loop.call_soon(self._report_exit)
            return completion
        if self.exited.done():
            outcome = self.exited.result()
            return self._failed(self._exited(outcome.exit_status, outcome.signal, " before it was ready"))
        await self._terminate()
        return self._failed(TimeoutError(f"{format_path(self.path)}: not ready within {timeout:g}s"))

    def _report_exit(self) -> None:
        self.runner.child_exited(self, self.exited.result())

    # -- exit ---------------------------------------------------------------------

    def _on_reaped(self, code: int, status: int) -> None:
        self.reaped = True
        exit_status, signum = (status, None) if code == os.CLD_EXITED else (None, status)
        assert self._pid is not None
        leftovers = self.reaper.leftovers(self._pid, self.marker, self._born)
        if not leftovers:
            self._finish(exit_status, signum)
            return
        self.runner.runtime.spawn(
            self._clean_up(leftovers, exit_status, signum), name=f"clean up {format_path(self.path)}"
        )

    async def _clean_up(self, leftovers: list[int], exit_status: int | None, signum: int | None) -> None:
        assert self._pid is not None
        try:
            for _ in range(_MAX_CLEANUP_ROUNDS):  # again, in case they forked meanwhile
                await self.reaper.kill_and_reap(leftovers)
                leftovers = self.reaper.leftovers(self._pid, self.marker, self._born, fresh=True)
                if not leftovers:
                    break
            else:
                logger.warning("%s: %d process(es) left behind still alive", format_path(self.path), len(leftovers))
        finally:
            self._finish(exit_status, signum)

    def _finish(self, exit_status: int | None, signum: int | None) -> None:
        self._unwatch()
        if self.kill_timer is not None:
            self.kill_timer.cancel()
        reported = self.started and not self.stopping
        output = self.output
        if reported and type(output) is PrefixedOutput and output.reusable:
            # Drained now, as for any exit; kept open while the exit is reported,
            # for a restart made at once (``_pipes``); closed after, if none took them.
            output.drain()
            self.output = None
        else:
            output = None
        self._release()
        outcome = self._outcome(exit_status, signum)
        self.exited.set_result(outcome)
        if not reported:
            return
        if output is None:
            self.runner.child_exited(self, outcome)
            return
        key = (id(self.runner.runtime), self.path)
        _handed_on[key] = output
        try:
            self.runner.child_exited(self, outcome)
        finally:
            if _handed_on.get(key) is output:
                del _handed_on[key]
                output.drain_and_close()

    def _outcome(self, exit_status: int | None, signum: int | None) -> Outcome:
        if self.stopping:
            return Outcome(ExitReason.SHUTDOWN, None, exit_status, signum)
        if self.injected is not None:
            return Outcome(ExitReason.CRASH, self.injected, exit_status, signum)
        if exit_status == 0:
            return Outcome(ExitReason.NORMAL, None, exit_status, signum)
        return Outcome(ExitReason.CRASH, self._exited(exit_status, signum), exit_status, signum)

    def _exited(self, exit_status: int | None, signum: int | None, when: str = "") -> ProcessExited:
        name = signal_name(signum) if signum is not None else ""
        return ProcessExited(self.path, exit_status, signum, when, signal_name=name)

    def _release(self) -> None:
        if self.output is not None:
            self.output.drain_and_close()
        if self.notify is not None:
            self.notify.close()

    # -- stop ---------------------------------------------------------------------

    def stop(self) -> StopDone | Awaitable[StopDone]:
        self.stopping = True
        self._unwatch()
        if self.exited.done():
            return self._stopped(self.exited.result())
        return self._stop()

    async def _stop(self) -> StopDone:
        return self._stopped(await self._terminate())

    async def _terminate(self) -> Outcome:
        """Stop signal to the group, ``shutdown`` seconds, SIGKILL; the outcome."""
        shutdown = self.spec.shutdown
        if shutdown is BRUTAL_KILL:
            self._signal_group(signal.SIGKILL)
        else:
            self._signal_group(self.process.stop_signal)
            timeout = None if shutdown is INFINITY else float(shutdown)
            done, _ = await asyncio.wait({self.exited}, timeout=timeout)
            if not done:
                logger.warning(
                    "%s: still running %gs after %s; killing it",
                    format_path(self.path),
                    timeout,
                    signal.Signals(self.process.stop_signal).name,
                )
                self._signal_group(signal.SIGKILL)
        return await asyncio.shield(self.exited)

    def _signal_group(self, signum: int) -> None:
        if not self.reaped and self._pid is not None:  # once reaped, the pid may be reused
            signal_group(self._pid, signum)

    def fail(self, error: BaseException, watchdog: bool) -> None:
        """``watchdog_signal`` (a missed watchdog) or ``stop_signal`` (unhealthy)
        to the group, SIGKILL after ``shutdown``; the exit is a crash with ``error``."""
        if not self.started or self.stopping or self.reaped or self.injected is not None:
            return
        self._unwatch()
        self.injected = error
        shutdown = self.spec.shutdown
        if shutdown is BRUTAL_KILL:
            self._signal_group(signal.SIGKILL)
            return
        self._signal_group(self.process.watchdog_signal if watchdog else self.process.stop_signal)
        if shutdown is not INFINITY:
            loop = self.runner.runtime.loop
            self.kill_timer = loop.call_later(float(shutdown), self._signal_group, signal.SIGKILL)

    def crash(self, error: BaseException) -> None:
        """SIGKILL the process group; the exit is reported as a crash with ``error``."""
        if self.started and not self.stopping and not self.reaped:
            self.injected = error
            self._signal_group(signal.SIGKILL)


async def _connect(check: _ready.Port) -> None:
    """Try to connect to ``host:port`` until it works (10 ms, growing to 200 ms)."""
    loop = asyncio.get_running_loop()
    if check.numeric_host:
        infos = socket.getaddrinfo(check.host, check.port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    else:
        infos = await loop.getaddrinfo(check.host, check.port, type=socket.SOCK_STREAM)
    interval = 0.01
    while True:
        for family, kind, proto, _, address in infos:
            with socket.socket(family, kind, proto) as sock:
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, address)
                except OSError:
                    continue
                return
        await asyncio.sleep(interval)
        interval = min(interval * 2, 0.2)

"""Running health probes and watchdogs on the event loop; deciding nothing.

A :class:`ProbeRunner` runs one child's ``health=`` probe every ``every``
seconds of the tree's clock, as a task on the supervisor's event loop (no
thread per probe), never two at once, each cut at ``timeout``, and reports each
result. A :class:`Watchdog` is a deadline that each heartbeat pushes ahead and
that reports once when it is missed. What a failure means (counting consecutive
failures, grace, stopping the child, counting the crash) is the core's
business: these only measure and report.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
from collections.abc import Callable
from typing import Any

from .._core.messages import Probed, WatchdogExpired
from .._process.proc import signal_group
from .._process.reaper import reaper, spawner
from .._process.spawn import PRIVATE_VARIABLES
from ..health import Call, Exec, Http, Probe, Tcp
from .clock import Clock, TimerHandle

Report = Callable[[bool, str], None]
"""Called with ``(healthy, reason)`` after each probe."""

_REASON_MAX = 200
_STDERR_KEPT = 4096


class ProbeRunner:
    """Runs ``probe`` periodically from ``start()`` to ``close()``; see the module docstring."""

    def __init__(self, clock: Clock, probe: Probe, report: Report, *, cwd: str | None = None, label: str = "") -> None:
        self.clock = clock
        self.probe = probe
        self.report = report
        self.cwd = cwd
        self.label = label
        self.running: asyncio.Task[None] | None = None
        """The probe in progress, if any."""
        self.runs = 0
        """Probes started so far."""
        self.skipped = 0
        """Ticks at which the previous probe was still running (not started again)."""
        self._timer: TimerHandle | None = None
        self._next = 0.0
        self._closed = False

    def start(self) -> None:
        """Begin: the first probe runs ``every`` seconds from now."""
        self._next = self.clock.now() + self.probe.every
        self._timer = self.clock.call_at(self._next, self._tick)

    def _tick(self) -> None:
        if self._closed:
            return
        self._next += self.probe.every
        now = self.clock.now()
        if self._next <= now:  # the loop was held up: skip the missed ticks, keep the rhythm
            missed = int((now - self._next) // self.probe.every) + 1
            self._next += missed * self.probe.every
        self._timer = self.clock.call_at(self._next, self._tick)
        if self.running is not None:
            self.skipped += 1
            return
        self.runs += 1
        loop = asyncio.get_running_loop()
        self.running = loop.create_task(self._run(), name=f"health {self.label}")

    async def _run(self) -> None:
        probe = self.probe
        try:
            try:
                async with asyncio.timeout(probe.timeout):
                    healthy, reason = await run_probe(probe, self.cwd)
            except TimeoutError:
                healthy, reason = False, f"no answer within {probe.timeout:g}s"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure of the probe is a result, never a crash of ours
                healthy, reason = False, _describe(exc)
        finally:
            self.running = None
        if not self._closed:
            self.report(healthy, reason[:_REASON_MAX])

    def close(self) -> asyncio.Task[None] | None:
        """Stop probing; the probe in progress (if any) is cancelled and returned,
        so that the caller can let it finish its cleanup (an exec probe kills and
        reaps its process)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = self.running
        if task is not None:
            task.cancel()
        return task


async def run_probe(probe: Probe, cwd: str | None = None) -> tuple[bool, str]:
    """Run ``probe`` once, without its timeout (the caller applies it): ``(healthy, reason)``."""
    if isinstance(probe, Http):
        return await _http(probe)
    if isinstance(probe, Tcp):
        return await _tcp(probe)
    if isinstance(probe, Exec):
        return await _exec(probe, cwd)
    assert isinstance(probe, Call)
    return await _call(probe)


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _http(probe: Http) -> tuple[bool, str]:
    context = ssl.create_default_context() if probe.url.startswith("https:") else None
    host = probe.host
    reader, writer = await asyncio.open_connection(host, probe.port, ssl=context)
    try:
        authority = f"[{host}]" if ":" in host else host
        request = (
            f"GET {probe.target} HTTP/1.1\r\nHost: {authority}:{probe.port}\r\n"
            "User-Agent: supervision-health\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("ascii", "replace"))
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        shown = line[:60].decode("ascii", "replace").strip()
        return False, f"not an HTTP answer: {shown!r}" if shown else "connection closed without an answer"
    code = int(parts[1])
    text = line.decode("latin-1").strip()
    return 200 <= code < 400, text


async def _tcp(probe: Tcp) -> tuple[bool, str]:
    _, writer = await asyncio.open_connection(probe.host, probe.port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, f"connected to {probe.host}:{probe.port}"


async def _call(probe: Call) -> tuple[bool, str]:
    result: Any = await probe.fn()
    if result is False:
        return False, "returned False"
    return True, "ok"


def _environment() -> dict[bytes, bytes]:
    env = dict(os.environb)
    for name in PRIVATE_VARIABLES:
        env.pop(name, None)
    return env


async def _exec(probe: Exec, cwd: str | None) -> tuple[bool, str]:
    loop = asyncio.get_running_loop()
    watcher = reaper()
    exited: asyncio.Future[tuple[int, int]] = loop.create_future()
    read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
    stderr = bytearray()
    devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)

    def on_readable() -> None:
        try:
            data = os.read(read_end, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(read_end)
            return
        stderr.extend(data)
        del stderr[:-_STDERR_KEPT]

    def on_reaped(code: int, status: int) -> None:
        if not exited.done():
            exited.set_result((code, status))

    try:
        pid = spawner().spawn(probe.argv, cwd, _environment(), devnull, write_end, pdeathsig=True)
    except OSError as exc:
        os.close(read_end)
        return False, _describe(exc)
    finally:
        os.close(write_end)
        os.close(devnull)
    loop.add_reader(read_end, on_readable)
    try:
        try:
            watcher.watch(pid, on_reaped)
        except OSError:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        try:
            code, status = await asyncio.shield(exited)
        finally:
            if not exited.done():  # cut at the timeout (or the child was stopped): kill and reap it
                signal_group(pid, signal.SIGKILL)
                await asyncio.shield(exited)
    finally:
        with contextlib.suppress(OSError, ValueError):
            on_readable()  # what is left in the pipe
        loop.remove_reader(read_end)
        os.close(read_end)
    if code == os.CLD_EXITED and status == 0:
        return True, "exit status 0"
    how = f"exit status {status}" if code == os.CLD_EXITED else f"killed by {_signal_name(status)}"
    lines = bytes(stderr).decode("utf-8", "replace").strip().splitlines()
    return False, f"{how}: {lines[-1].strip()}" if lines else how


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Watchdog:
    """A deadline ``period`` seconds ahead, pushed ahead by each :meth:`beat`;
    calls ``on_expired(period, triggered)`` once if it passes (or on :meth:`trigger`).

    A heartbeat only writes a number (no timer is cancelled or created), so a
    worker may call ``ctx.heartbeat()`` as often as it likes; the one timer
    re-arms itself at the latest deadline when it fires early."""

    __slots__ = ("_handle", "clock", "closed", "deadline", "on_expired", "period")

    def __init__(self, clock: Clock, period: float, on_expired: Callable[[float, bool], None]) -> None:
        self.clock = clock
        self.period = period
        self.on_expired = on_expired
        self.closed = False
        self.deadline = clock.now() + period
        self._handle: TimerHandle | None = clock.call_at(self.deadline, self._check)

    def beat(self) -> None:
        """The child is alive: the deadline is ``period`` seconds from now."""
        self.deadline = self.clock.now() + self.period

    def set_period(self, period: float) -> None:
        """A new period (``WATCHDOG_USEC=``), counted from now; 0 turns the watchdog off."""
        if self.closed:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.period = period
        if period <= 0:
            return
        self.deadline = self.clock.now() + period
        self._handle = self.clock.call_at(self.deadline, self._check)

    def trigger(self) -> None:
        """``WATCHDOG=trigger``: expire now."""
        if not self.closed:
            self.close()
            self.on_expired(self.period, True)

    def _check(self) -> None:
        self._handle = None
        if self.closed:
            return
        if self.clock.now() >= self.deadline:
            self.close()
            self.on_expired(self.period, False)
        else:
            self._handle = self.clock.call_at(self.deadline, self._check)

    def close(self) -> None:
        self.closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def watchdog_message(watchdog: Watchdog, key: str, value: str) -> bool:
    """Apply one sd_notify assignment to ``watchdog``: ``WATCHDOG=1`` (a beat),
    ``WATCHDOG=trigger``, ``WATCHDOG_USEC=N`` (a new period). False if it was
    none of those (or malformed)."""
    if key == "WATCHDOG":
        if value == "1":
            watchdog.beat()
            return True
        if value == "trigger":
            watchdog.trigger()
            return True
        return False
    if key == "WATCHDOG_USEC" and value.isdigit():
        watchdog.set_period(int(value) / 1_000_000)
        return True
    return False


class Monitor:
    """The watchdog and the health probe of one incarnation, from its readiness
    to its stop or exit; their reports go to ``feed`` as the core's inputs."""

    __slots__ = ("feed", "id", "probe", "token", "watchdog")

    def __init__(
        self,
        clock: Clock,
        id: str,
        token: int,
        watchdog: float | None,
        probe: Probe | None,
        feed: Callable[[Probed | WatchdogExpired], None],
        *,
        cwd: str | None = None,
        label: str = "",
    ) -> None:
        self.id = id
        self.token = token
        self.feed = feed
        self.watchdog = Watchdog(clock, watchdog, self._expired) if watchdog else None  # 0: turned off
        self.probe: ProbeRunner | None = None
        if probe is not None:
            self.probe = ProbeRunner(clock, probe, self._probed, cwd=cwd, label=label)
            self.probe.start()

    def _expired(self, period: float, triggered: bool) -> None:
        self.feed(WatchdogExpired(self.id, self.token, period, triggered))

    def _probed(self, healthy: bool, reason: str) -> None:
        self.feed(Probed(self.id, self.token, healthy, reason))

    def beat(self) -> None:
        if self.watchdog is not None:
            self.watchdog.beat()

    def close(self) -> asyncio.Task[None] | None:
        """Stop watching; the probe in progress, cancelled, if any."""
        if self.watchdog is not None:
            self.watchdog.close()
        return self.probe.close() if self.probe is not None else None

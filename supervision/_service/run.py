"""``sv.run``: the blocking entry point for a program whose job is to run a tree.

Under ``run`` the tree gets what a long-running service needs:

- **signals**: SIGTERM and SIGINT stop the tree in order; a second SIGINT while
  it stops sends SIGKILL to every OS process child still running (to its whole
  process group), so no ``shutdown`` timeout of a process is waited out (in-process
  workers are still cancelled in order: a task cannot be killed); a third SIGINT
  kills them again and exits at once (status 130). SIGHUP reloads the tree; SIGUSR1 reopens
  the log files (``sv.log_file``), after an external logrotate.
- **the control socket** (``server``, ``commands``): ``supervision status``,
  ``restart``, ``stop``, ``start``, ``reload``, ``logs``, ``reexec``.
- **re-exec in place** (``_reload.reexec``): the control socket, the connection that
  asked, uptimes, last exits and recent output lines are handed over with the
  tree; the new image serves the same socket and answers that request.
- **systemd** (``systemd``): ``READY=1``, ``RELOADING=1``, ``STOPPING=1``,
  ``STATUS=``, watchdog pings, when ``NOTIFY_SOCKET`` / ``WATCHDOG_USEC`` are set.
- **bookkeeping for the command line** (``recorder``): uptime and last exit per
  path from the tree's events (observed as the tree emits them, so a status is one
  snapshot), and the recent output lines of process children.
- **observability** (``supervision.observe``): per-child CPU, memory and fds on
  ``status``; with ``http=``, ``/metrics``, ``/healthz``, ``/readyz``, ``/api/tree``
  and the dashboard; the termination message when the root gives up; the log format.

Exit status: 0 after an orderly stop, 1 when the tree fails to start or the root
gives up (or the control socket is taken), 130 after a forced stop (second SIGINT).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from .._core.errors import ReloadError, RequestError, StartError, SupervisionError, TooManyRestarts
from .._core.paths import format_path
from .._core.spec import Supervisor
from .._core.store import SnapshotStore, memory
from .._process.logfile import DRAIN_AT_EXIT as LOG_FILES_AT_EXIT
from .._process.logfile import drain as drain_log_files
from .._process.logfile import reopen as reopen_log_files
from .._process.output import DRAIN_AT_EXIT, Output, drain_sinks, non_blocking, write_prefixed
from .._process.proc import kill_other_sessions, reserve_fds
from .._process.reaper import claim_orphans, existing_reaper
from .._process.signals import add_signal_handler
from .._reload.reexec import Handover, attach
from .._reload.reexec import pending as pending_handover
from .._reload.services import is_services_file
from .._reload.target import Source, Target, is_file_target, split_target
from .._runtime.process import set_child_nofile
from .._runtime.tree import Tree, start_with_output
from ..observe import logs
from ..observe.observer import Observer
from ..observe.service import Observability
from .commands import Commands
from .protocol import ServiceState, check_name, default_path, state_dir
from .recorder import OutputLog, Recorder
from .server import ControlServer, current_request
from .sqlite import sqlite
from .systemd import Notifier, Watchdog, watchdog_interval

logger = logging.getLogger("supervision")

_DEFAULT: Any = object()

_STOP = "supervision stop"  # the task that stops the tree: awaited, never cancelled
FORCED_EXIT = 130  # 128 + SIGINT, as shells report a program stopped by Ctrl-C
RESERVED_FDS = 8192
"""The fd table ``run`` makes room for at once (64 KiB of kernel memory): some
2 700 process children (a pidfd and two pipes each) start without the table
growing; see ``_process.proc.reserve_fds``."""


def _configure_logging(log_format: str = "auto", name: str = "supervision") -> None:
    """INFO to stderr in ``log_format`` (``observe.logs``: text, JSON lines or
    journald's fields), unless the application configured logging itself."""
    root = logging.getLogger()
    if not root.handlers:
        # Through a sink when stderr is the real one: a stderr nobody reads must
        # not block the event loop on a log line (see ``_output.Sink``).
        root.addHandler(logs.handler(log_format, non_blocking(sys.stderr), identifier=name))
        root.setLevel(logging.INFO)


def run(
    target: Target,
    *,
    control: Any = _DEFAULT,
    name: str | None = None,
    store: Any = _DEFAULT,
    fresh: bool = False,
    http: str | None = None,
    termination_log: Any = _DEFAULT,
    log_format: str = "auto",
) -> None:
    """Run a tree until it stops: the blocking entry point.

    SIGTERM and SIGINT stop the tree in order (a second SIGINT kills the OS
    processes that are left); SIGHUP reloads it (for a builder or a string
    target). The control socket (``supervision status`` and friends) is served
    at ``control`` (default: ``$XDG_RUNTIME_DIR/supervision/NAME.sock``; None
    turns it off); ``name`` defaults to the target's module or file name. Speaks
    sd_notify when ``NOTIFY_SOCKET`` is set. Logs go to stderr at INFO unless
    logging is already configured. Exits with status 1 when the root gives up
    or fails to start.

    Snapshots go to ``store``: by default a SQLite database ``NAME.db`` in the
    state directory (``$STATE_DIRECTORY``, ``/var/lib/supervision`` for root,
    else ``$XDG_STATE_HOME/supervision``), or beside a control socket given
    explicitly (docs/distributed.md says what a crash can lose); ``None`` keeps
    them in memory. ``fresh`` starts without the snapshots of earlier runs
    (``supervision run --fresh``).

    Observability (``docs/observability.md``): ``http="127.0.0.1:9464"`` serves
    ``/metrics``, ``/healthz``, ``/readyz``, ``/api/tree`` and the dashboard (a
    bare port listens on loopback; needs ``supervision[http]``);
    ``termination_log`` is where the reason of a give-up is written (default
    ``/dev/termination-log`` when it exists, None: nowhere); ``log_format`` is
    ``"auto"`` (journald's fields under systemd, else text), ``"text"``,
    ``"json"`` or ``"journal"``.

    >>> if __name__ == "__main__":
    ...     sv.run(build)          # or: sv.run("myapp.tree:build")
    """
    name = check_name(name) if name is not None else default_name(target)
    _configure_logging(log_format, name)
    claim_orphans()  # this process is the supervisor: what its subreaper inherits is the tree's
    handover = pending_handover()
    child_nofile = raise_nofile(handover.host.get("nofile") if handover is not None else None)
    reserve_fds(RESERVED_FDS)  # before any thread starts: no RCU grace period to wait for
    options: dict[str, Any] = {"http": http}
    if termination_log is not _DEFAULT:
        options["termination_log"] = termination_log
    # A bad address or a missing extra fails here, before anything starts.
    observability = Observability(lambda: asyncio.get_running_loop().time(), **options)
    path: str | None
    if control is _DEFAULT:
        path = default_path(name)
    elif control is None:
        path = None
    else:
        path = os.fspath(control)
    if fresh and handover is not None:
        fresh = False  # re-executed with the same arguments: the snapshots came along
    if store is _DEFAULT:
        # With the default control socket, in the state directory (it survives a
        # reboot; the sockets' runtime directory is usually a tmpfs). With a control
        # socket of the caller's choosing, beside it: that directory is theirs.
        if control is _DEFAULT or path is None:
            database = os.path.join(state_dir(), f"{name}.db")
        else:
            database = os.path.splitext(path)[0] + ".db"
        store = sqlite(database, fresh=fresh)
    elif store is None:
        store = memory()
    elif fresh:
        raise ValueError("fresh=True goes with the default store; call store.clear() on your own")
    try:
        service = Service(target, name, observability, store)
        service.child_nofile = child_nofile
        code = asyncio.run(service.main(path))
    finally:
        drain_sinks(DRAIN_AT_EXIT)
        drain_log_files(LOG_FILES_AT_EXIT)
    if code:
        raise SystemExit(code)


def raise_nofile(original: int | None = None) -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit, as systemd does for itself:
    each process child holds a pidfd and two output pipes here, so 10 000 children need
    some 30 000 descriptors, far above the usual soft limit (1 024 under systemd).
    Children get the soft limit back that this process was started with (``original``:
    the one a re-executed image's predecessor was started with), through their spawn
    settings, and only when it was raised. Returns that soft limit, or None."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if original is None:
        original = soft
    if soft == resource.RLIM_INFINITY:
        set_child_nofile(None)
        return None
    if hard == resource.RLIM_INFINITY:  # the kernel refuses more than fs.nr_open
        try:
            with open("/proc/sys/fs/nr_open") as file:
                target = int(file.read())
        except (OSError, ValueError):
            target = 1 << 20
    else:
        target = hard
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            logger.warning("cannot raise the soft limit of open files from %d to %d: %s", soft, target, exc)
    if original == resource.RLIM_INFINITY or original >= soft:
        set_child_nofile(None)
        return None
    set_child_nofile((original, None if hard == resource.RLIM_INFINITY else hard))
    return original


def default_name(target: Target) -> str:
    """The tree's name when none is given: ``pkg.module`` or the file's stem."""
    if isinstance(target, str):
        module, _ = (target, "") if is_services_file(target) else split_target(target)
        is_file = is_services_file(module) or is_file_target(module)
        raw = os.path.splitext(os.path.basename(module))[0] if is_file else module
    elif isinstance(target, Supervisor):
        raw = "supervision"
    else:
        raw = getattr(target, "__module__", None) or "supervision"
        if raw == "__main__":
            raw = os.path.splitext(os.path.basename(sys.argv[0] or "main"))[0]
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in raw).lstrip(".")
    return cleaned or "supervision"


class Service:
    """One ``sv.run``: the tree, its control socket, its signals and its systemd link.

    It is also the ``Host`` the control commands run against.
    """

    def __init__(
        self,
        target: Target,
        name: str,
        observability: Observability | None = None,
        store: SnapshotStore | None = None,
    ) -> None:
        self.target_value = target
        self.name = name
        self.store = store
        self.target = Source(target).describe()
        self.state = ServiceState.STARTING
        self.tree: Tree | None = None
        self.recorder: Recorder | None = None
        self.output = OutputLog()
        self.notifier = Notifier.from_environ()
        self.forced = False
        self.child_nofile: int | None = None  # the soft NOFILE limit children get back (``raise_nofile``)
        self._started_at = 0.0
        self._stop_pending = False
        self._interrupts = 0
        self._reload_lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: ControlServer | None = None
        self._reply_to: Any = None  # the connection of a reexec request, handed over
        self._handover: Handover | None = None
        self.observability = observability if observability is not None else Observability(self.now)

    def _output(self, record: Output) -> None:
        """The tree's output sink: each record kept for ``supervision logs``, and
        written out as ``path | line``."""
        self.output.record(record)
        write_prefixed(record)

    # -- the Host protocol --------------------------------------------------------

    @property
    def observer(self) -> Observer:
        return self.observability.observer

    @property
    def http_url(self) -> str | None:
        return self.observability.url

    def events(self) -> Any:
        """The tree's events from now on (the HTTP endpoint's event stream);
        before the tree is up, an empty stream (the page connects again)."""
        tree = self.tree
        if tree is None or tree.stopped:
            return _no_events()
        return tree.events()

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def uptime(self) -> float:
        return self.now() - self._started_at

    def request_stop(self) -> None:
        """Begin an orderly stop (once). Before the tree is up, it stops as soon as it is."""
        if self.state is ServiceState.STOPPING:
            return
        self.state = ServiceState.STOPPING
        self.notifier.stopping("stopping")
        if self.tree is None:
            self._stop_pending = True
        else:
            self._spawn(self.tree.stop(), _STOP)

    async def reload(self) -> dict[str, Any]:
        """Reload the tree (SIGHUP, ``supervision reload``) and return what changed.
        A rejected reload raises ``RequestError("ReloadError", why)``."""
        tree = self.tree
        if tree is None or self.state is not ServiceState.RUNNING:
            raise RequestError("NotRunning", f"cannot reload: the tree is {self.state}")
        reload = getattr(tree, "reload", None)
        if reload is None:
            raise RequestError("NotSupported", "this version of supervision cannot reload")
        assert self._reload_lock is not None
        async with self._reload_lock:  # one at a time: SIGHUPs may come in bursts
            if self.state is not ServiceState.RUNNING:
                raise RequestError("NotRunning", f"cannot reload: the tree is {self.state}")
            self.state = ServiceState.RELOADING
            self.notifier.reloading()
            status = "reload rejected"
            try:
                result = applied_json(await reload())
                status = "reloaded: " + summary(result)
                return result
            except ReloadError as exc:
                reason = rejection(exc)
                status = f"reload rejected: {reason}"
                raise RequestError("ReloadError", reason) from exc
            finally:
                if self.state is ServiceState.RELOADING:
                    self.state = ServiceState.RUNNING
                    self.notifier.ready(status)

    async def plan_reload(self) -> dict[str, Any]:
        """What a reload would do (``supervision reload --dry-run``), without doing it.
        A reload that would be rejected raises ``RequestError("ReloadError", why)``."""
        tree = self.tree
        if tree is None or self.state != "running":
            raise RequestError("NotRunning", f"cannot plan a reload: the tree is {self.state}")
        assert self._reload_lock is not None
        async with self._reload_lock:  # not while a reload or re-exec runs
            try:
                return (await tree.plan_reload()).to_json()
            except ReloadError as exc:
                raise RequestError("ReloadError", rejection(exc)) from exc

    async def reexec(self) -> dict[str, Any]:
        """Re-execute in place (``supervision reexec``). On success this never
        returns: the new image answers the request, on the same connection. A
        refused re-exec raises ``RequestError("ReexecRejected", why)``."""
        tree = self.tree
        if tree is None or self.state is not ServiceState.RUNNING:
            raise RequestError("NotRunning", f"cannot re-exec: the tree is {self.state}")
        assert self._reload_lock is not None
        async with self._reload_lock:  # never during a reload
            if self.state is not ServiceState.RUNNING:
                raise RequestError("NotRunning", f"cannot re-exec: the tree is {self.state}")
            self.state = ServiceState.REEXECUTING
            self.notifier.reloading()
            self._reply_to = current_request()
            status = "re-exec rejected"
            try:
                await tree.reexec()
            except ReloadError as exc:
                reason = rejection(exc)
                status = f"re-exec rejected: {reason}"
                logger.error("%s", status)
                raise RequestError("ReexecRejected", reason) from exc
            finally:
                self._reply_to = None
                if self.state is ServiceState.REEXECUTING:
                    self.state = ServiceState.RUNNING
                    self.notifier.ready(status)

    # -- re-exec: the _reexec.Host protocol -----------------------------------------

    def handover(self) -> tuple[dict[str, Any], list[int]]:
        state: dict[str, Any] = {"started_at": self._started_at, "output": self.output.handover()}
        if self.child_nofile is not None:  # the new image starts with our raised limit
            state["nofile"] = self.child_nofile
        fds: list[int] = []
        if self.recorder is not None:
            state["recorder"] = self.recorder.handover()
        if self._server is not None:
            state["control"], fds = self._server.handover(self._reply_to)
        return state, fds

    def cancel_reason(self) -> str | None:
        return None if self.state is ServiceState.REEXECUTING else f"the tree is {self.state}"

    def _resume(self, handover: Handover) -> None:
        """The new image of a re-exec: take back what the old one handed over,
        before the tree starts (the tree takes its own part in ``sv.start``)."""
        state = handover.host
        self._handover = handover
        self._started_at = float(state.get("started_at", self._started_at))
        self.output.restore(state.get("output", []))

    def _resumed(self, tree: Tree | None, error: str | None = None) -> None:
        """The new image's tree is up (or failed to start): the bookkeeping of the
        old image, and the answer to the ``reexec`` request."""
        handover = self._handover
        if handover is None:
            return
        self._handover = None
        recorder = self.recorder
        if recorder is not None and "recorder" in handover.host:
            recorder.restore(handover.host["recorder"], kept=handover.resumed)
        reply = (handover.host.get("control") or {}).pop("reply", None)
        if reply is None:
            return
        if self._server is None:
            os.close(int(reply["fd"]))
        elif error is not None:
            self._server.resume(reply, None, ("ReexecFailed", error))
        else:
            self._server.resume(reply, {"pid": os.getpid(), **handover.result})

    # -- lifecycle ----------------------------------------------------------------

    async def main(self, path: str | None) -> int:
        loop = asyncio.get_running_loop()
        self._started_at = loop.time()
        self._reload_lock = asyncio.Lock()
        handover = pending_handover()  # this process was re-executed: take over
        control: dict[str, Any] | None = None
        if handover is not None:
            self._resume(handover)
            control = handover.host.get("control")
        commands = Commands(self)
        if path is not None:
            server = ControlServer(path, commands)
            try:
                if control is None or not server.adopt(control):
                    server.bind()  # before anything starts: a second copy fails here
            except (SupervisionError, OSError) as exc:
                logger.error("control socket: %s", exc)
                self._resumed(None, f"control socket: {exc}")
                return 1
            self._server = server
        elif control is not None:
            os.close(int(control["fd"]))
        restore_streams = _install_sinks()
        watchdog = None
        interval = watchdog_interval() if self.notifier.enabled else None
        if interval is not None:
            watchdog = Watchdog(self.notifier, interval)
            watchdog.start()
        signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
        for signum in signals:
            add_signal_handler(loop, signum, self._on_signal, signum)
        try:
            if self._server is not None:
                await self._server.start()
                logger.info("control socket: %s", self._server.path)
            try:
                await self.observability.start(commands, self.events, path)
            except OSError as exc:
                logger.error("http: cannot listen on %s: %s", self.observability.http, exc.strerror or exc)
                self._resumed(None, f"http: {exc}")
                return 1
            return await self._run_tree()
        finally:
            for signum in signals:
                loop.remove_signal_handler(signum)
            if watchdog is not None:
                watchdog.stop()
            await self._finish_tasks()
            await self.observability.close()
            if self._server is not None:
                await self._server.close()
            restore_streams()
            self.notifier.close()

    async def _run_tree(self) -> int:
        loop = asyncio.get_running_loop()
        self.notifier.status("starting")
        try:
            tree = await start_with_output(self.target_value, self._output, self.store)
        except StartError as exc:
            # Where it failed is in the message; the whole traceback only with --debug.
            logger.error("%s", exc, exc_info=exc if logger.isEnabledFor(logging.DEBUG) else None)
            self.notifier.stopping(f"failed to start: {exc}")
            self._resumed(None, f"the new image failed to start the tree: {exc}")
            return 1
        self.tree = tree
        attach(tree, self)
        self.recorder = Recorder(since=loop.time())
        self._resumed(tree)
        tree._observe(self.recorder.observe)  # in step with the tree: a status is one snapshot
        tree._observe(self.observability.observe)
        if self._stop_pending:
            self._spawn(tree.stop(), _STOP)
        else:
            self.state = ServiceState.RUNNING
            counts = tree.count_children()
            self.notifier.ready(f"running: {counts.active} of {counts.specs} children")
        try:
            await tree.wait()
        except TooManyRestarts as exc:
            logger.error("%s", exc)
            self.notifier.stopping(f"gave up: {exc}")
            self.observability.gave_up(exc)
            return 1
        except Exception as exc:  # the root crashed: a broken custom plan()
            logger.error("the root supervisor crashed", exc_info=exc)
            self.notifier.stopping(f"crashed: {exc!r}")
            return 1
        finally:
            self.state = ServiceState.STOPPING
            await tree.stop()
            await _kill_orphans()
        return FORCED_EXIT if self.forced else 0

    # -- signals ------------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGUSR1:  # after an external logrotate, as supervisord and nginx
            logger.info("SIGUSR1: reopening the log files")
            reopen_log_files()
            return
        if signum == signal.SIGHUP:
            if self.state is not ServiceState.RUNNING:
                logger.warning("SIGHUP: not reloading, the tree is %s", self.state)
                return
            logger.info("SIGHUP: reloading the tree")
            self._spawn(self._reload_quietly(), "supervision reload")
            return
        if self.state is not ServiceState.STOPPING:
            hint = " (SIGINT again to kill the OS processes at once)" if signum == signal.SIGINT else ""
            logger.info("%s: stopping the tree%s", name, hint)
            self.request_stop()
            return
        if signum != signal.SIGINT:
            logger.info("%s: already stopping", name)
            return
        self._interrupts += 1
        self.forced = True
        killed = kill_other_sessions()
        if self._interrupts == 1:
            logger.warning("SIGINT again: killed %d process group(s); SIGINT once more exits at once", killed)
            return
        logger.warning("SIGINT a third time: exiting now, without waiting for the workers")
        if self._server is not None:
            self._server._unlink()
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        drain_sinks(DRAIN_AT_EXIT)
        drain_log_files(DRAIN_AT_EXIT)
        os._exit(FORCED_EXIT)

    async def _reload_quietly(self) -> None:
        try:
            await self.reload()
        except RequestError as exc:
            if exc.type != "ReloadError":  # a rejected reload is logged by its event
                logger.warning("SIGHUP: %s", exc)

    # -- tasks --------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    async def _finish_tasks(self) -> None:
        """Let stop and reload tasks end (the tree has stopped: they end at once);
        cancel what is left, such as a reload waiting for its turn."""
        tasks = set(self._tasks)
        for task in tasks:
            if task.get_name() != _STOP:
                task.cancel()
        if tasks:
            await asyncio.wait(tasks)


async def _no_events() -> Any:
    return
    yield  # an async generator that ends at once


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed", task.get_name(), exc_info=task.exception())


def rejection(error: ReloadError) -> str:
    """Why a reload was rejected, in one line: the cause, not our wrapper."""
    cause = error.__cause__
    while isinstance(cause, ReloadError) and cause.__cause__ is not None:
        cause = cause.__cause__
    if cause is None or isinstance(cause, ReloadError):
        return str(cause or error)
    if isinstance(cause, SupervisionError):
        return str(cause)
    return f"{type(cause).__name__}: {cause}"


def applied_json(applied: Any) -> dict[str, Any]:
    """A ``ReloadApplied`` as the protocol's reload result (paths as ``"a/b"``)."""
    fields = ("started", "stopped", "restarted", "updated", "reset")
    return {field: [format_path(path) for path in getattr(applied, field, ())] for field in fields}


def summary(result: dict[str, Any]) -> str:
    parts = [f"{field} {', '.join(paths)}" for field, paths in result.items() if paths]
    return "; ".join(parts) if parts else "nothing changed"


async def _kill_orphans() -> None:
    """The tree has stopped: whatever the subreaper still holds (a daemon no child
    could be told apart as the parent of, see ``Reaper.leftovers``) is ours to end."""
    found = existing_reaper()
    if found is None:
        return
    orphans = found.orphans()
    if orphans:
        logger.info("killing %d orphaned process(es) left at the stop of the tree", len(orphans))
        await found.kill_and_reap(orphans)


def _install_sinks() -> Callable[[], None]:
    """Our stdout and stderr through sinks while the tree runs (when they are the real
    ones): the event loop must never block on its own output (see ``output.Sink``)."""
    saved = (sys.stdout, sys.stderr)
    out, err = non_blocking(sys.stdout), non_blocking(sys.stderr)
    if out is not None:
        sys.stdout = out
    if err is not None:
        sys.stderr = err

    def restore() -> None:
        # Only if nobody replaced them meanwhile.
        if out is not None and sys.stdout is out:
            sys.stdout = saved[0]
        if err is not None and sys.stderr is err:
            sys.stderr = saved[1]

    return restore

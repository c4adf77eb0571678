"""Re-exec in place: ``tree.reexec()`` and ``supervision reexec`` (systemd's daemon-reexec).

The supervisor replaces its own program with ``execve``: the same pid, so its OS
children stay its children and keep running, untouched, with their pids; the
new image (the code on disk now: a new version of ``supervision``, of the
application, of Python's packages) takes them over.

The old image
-------------
1. **Checks** that the new image can take over, in a subprocess (never by
   importing into the running tree): ``supervision`` imports, can read this
   handover format, and the target builds (for a builder in ``__main__``, the
   main script compiles). If not: ``ReloadError``, and nothing has changed.
2. **Stops the in-process workers**, right to left, as a stop would (cancel,
   ``shutdown``, abandon), so that they can save a last snapshot; OS processes
   are left alone.
3. **Blocks** SIGTERM, SIGINT, SIGHUP and SIGCHLD. A blocked signal stays
   pending across ``execve`` and is delivered once the new image has installed
   its handlers: none is lost in between. Signals that arrived just before are
   handled first (a stop cancels the re-exec).
4. **Collects**, synchronously from here to the exec, so that no event is
   handled in between: the target, the store (snapshots, start counts, state
   versions), which children are terminated or deleted, the OS children (path,
   pid, start time, the fds we hold for them) and what the host (``sv.run``)
   adds: its control socket, the connection to answer, its bookkeeping.
5. **Writes** it to a memfd, clears close-on-exec on exactly the fds to keep
   (that memfd, the children's pipe read ends and notify sockets, the control
   socket's listener and the requesting connection) and ``execve``\\ s the same
   interpreter with the same arguments, the memfd's number in
   ``SUPERVISION_REEXEC_FD``. Should ``execve`` fail, the flags are put back and
   the workers started again: the old image keeps supervising.

The new image
-------------
``sv.run`` reads and closes the memfd at once (:func:`pending`); the first tree
started claims it (:func:`claim`, in ``sv.start``) and, before its children start
(:meth:`Handover.prepare`): sets the subreaper again, re-adopts each OS child by
pid (``_process.adopt``: pidfd, start time), unblocks the signals, restores the store,
and decides per child: adopted by the declared process at its path if that
would start the same thing (argv, cwd, env, output, pdeathsig, notify); else
(removed from the code, dynamic, changed) stopped before the tree starts, so an
old process never runs beside its replacement. Then the tree starts: an adopted
path is "started" by adopting its process (no spawn, same pid); workers start
again with their snapshots; a terminated or deleted child is "held" (started
as nothing) and terminated again (:meth:`Handover.finish`), so an operator's
stop holds across a re-exec.

The format
----------
The memfd holds ``supervision-reexec\\n`` and a JSON document (``FORMAT`` 1):
structure as plain JSON, versioned, readable by a person; only snapshots, the
application's own values, are pickled (base64 strings). They are immutable plain
data (pyrsistent, tuples, frozensets, atoms), all of which pickle exactly,
including ``PRecord``/``PClass`` subclasses an explicit encoder would have to
look up by name anyway; unpickling runs code, but the memfd is written by this
process for this process (close-on-exec everywhere else), so it is trusted.
Each snapshot is pickled on its own: one that cannot be unpickled any more (its
class is gone from the new code) is dropped with an error, not the others.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from .._core.dynamic import Args, DynamicSupervisor
from .._core.errors import ReloadError
from .._core.paths import Path, format_path
from .._core.snapshot import PathStore
from .._core.spec import ChildSpec, Kind, Supervisor, descendants
from .._process.adopt import Adoption, ProcessRecord, launch
from .._process.logfile import drain as drain_log_files
from .._process.output import OutputSink, drain_sinks
from .._process.proc import kill_other_sessions, set_done
from .._process.reaper import reaper
from .._process.spawn import set_child_subreaper

if TYPE_CHECKING:
    from .target import Source

logger = logging.getLogger("supervision")

ENV = "SUPERVISION_REEXEC_FD"
"""The environment variable that tells the new image where its handover is."""
FORMAT = 1
"""The version of the handover this code writes."""
READABLE = frozenset({1})
"""The versions of the handover this code can read (the pre-exec check asks the new code)."""
MAGIC = b"supervision-reexec\n"
CHECK_TIMEOUT = 30.0
"""Seconds the pre-exec check (a subprocess) may take."""

_CHANGED = "its spec changed: started again with the new one"
_BLOCKED = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD})
_PICKLE_PROTOCOL = 5
_DRAIN_BEFORE_EXEC = 0.5  # seconds given to queued output before execve


class Host(Protocol):
    """What ``sv.run`` adds to a re-exec (``_run.Service``)."""

    def handover(self) -> tuple[dict[str, Any], list[int]]:
        """Its state as JSON values, and the fds to keep open across the exec."""
        ...

    def cancel_reason(self) -> str | None:
        """Why the re-exec must not happen now (a stop began), or None."""
        ...


_hosts: weakref.WeakKeyDictionary[Any, Host] = weakref.WeakKeyDictionary()


def attach(tree: Any, host: Host) -> None:
    """``sv.run`` serves this tree: hand its state over too."""
    _hosts[tree] = host


def host_of(tree: Any) -> Host | None:
    """The ``sv.run`` that serves ``tree``, if any."""
    return _hosts.get(tree)


# -- the old image ------------------------------------------------------------------


BLOCKED = _BLOCKED


def document(
    source: Source,
    store: PathStore,
    processes: list[ProcessRecord],
    terminated: list[Path],
    gone: list[Path],
    host: Host | None,
    dynamic: list[tuple[Path, list[tuple[str, Args]]]] | None = None,
) -> tuple[dict[str, Any], list[int]]:
    """The handover document (JSON values) and the fds to keep open across the exec:
    the running tree's source, store and OS children, which declared children are
    terminated or gone, the children of each dynamic supervisor with their
    arguments, and what the host (``sv.run``) adds."""
    fds = [fd for record in processes for fd in record.fds()]
    host_state: dict[str, Any] = {}
    if host is not None:
        host_state, host_fds = host.handover()
        fds += host_fds
    state = {
        "format": FORMAT,
        "pid": os.getpid(),
        "target": source.describe(),
        "store": encode_store(store),
        "processes": [record.to_json() for record in processes],
        "terminated": [list(path) for path in terminated],
        "gone": [list(path) for path in gone],
        "dynamic": encode_dynamic(dynamic or []),
        "host": host_state,
    }
    return state, fds


def encode_dynamic(dynamic: list[tuple[Path, list[tuple[str, Args]]]]) -> list[list[Any]]:
    """Each dynamic supervisor's children: ``[path, [[id, arguments], ...]]``, the
    arguments pickled (as snapshots are: this process writes it for itself). A
    child whose arguments cannot be pickled (a socket, a connection) cannot be
    started again in the new image: it is left out, with a warning; so are its
    process and its snapshot."""
    found: list[list[Any]] = []
    for path, children in dynamic:
        kept: list[list[str]] = []
        for id, args in children:
            try:
                blob = pickle.dumps(args, protocol=_PICKLE_PROTOCOL)
            except Exception as exc:
                where = format_path((*path, id))
                logger.warning("%s: re-exec: not carried over, its arguments cannot be: %r", where, exc)
                continue
            kept.append([id, base64.b64encode(blob).decode()])
        found.append([list(path), kept])
    return found


def decode_dynamic(state: dict[str, Any]) -> dict[Path, list[tuple[str, Args]]]:
    """The children of :func:`encode_dynamic`, by their supervisor's path; one whose
    arguments cannot be read any more is dropped (logged)."""
    found: dict[Path, list[tuple[str, Args]]] = {}
    for raw, children in state.get("dynamic", []):
        path = tuple(raw)
        for id, blob in children:
            try:
                args = pickle.loads(base64.b64decode(blob))
            except Exception as exc:
                logger.error("%s: re-exec: dropped, its arguments cannot be read: %r", format_path((*path, id)), exc)
                continue
            found.setdefault(path, []).append((id, args))
    return found


def execute(
    state: dict[str, Any], fds: list[int], previous: set[int | signal.Signals], timings: dict[str, float]
) -> NoReturn:
    """Write the handover to a memfd, keep ``fds`` open across the exec, and
    ``execve`` this interpreter with the same arguments. Returns only by raising
    ``ReloadError`` (then every fd is close-on-exec again)."""
    state["blocked"] = sorted(int(signum) for signum in _BLOCKED - previous)
    state["timings"] = {**timings, "exec": time.monotonic()}
    data = MAGIC + json.dumps(state, separators=(",", ":")).encode()
    try:
        memfd = os.memfd_create("supervision-reexec", os.MFD_CLOEXEC)
    except OSError as exc:
        raise ReloadError(f"re-exec failed: memfd_create: {exc.strerror or exc}") from exc
    try:
        keep = [*fds, memfd]
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(memfd, view) :]
            os.lseek(memfd, 0, os.SEEK_SET)
            for fd in keep:
                os.set_inheritable(fd, True)
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError, ValueError):
                        stream.flush()
            argv = [sys.executable, *sys.orig_argv[1:]]
            logger.info("re-exec: %s (%d OS children handed over)", " ".join(argv), len(state["processes"]))
            drain_sinks(_DRAIN_BEFORE_EXEC)  # the queued output, unless a stream is blocked
            drain_log_files(_DRAIN_BEFORE_EXEC)  # and the lines queued for log files
            os.execve(sys.executable, argv, {**os.environ, ENV: str(memfd)})
        except OSError as exc:
            raise ReloadError(f"re-exec failed: {exc.strerror or exc} ({sys.executable})") from exc
        finally:  # only after a failure: keep nothing open for children we may spawn
            for fd in keep:
                with contextlib.suppress(OSError):
                    os.set_inheritable(fd, False)
    finally:
        os.close(memfd)


# -- the pre-exec check ---------------------------------------------------------------

_CHECK = """\
import json, sys
request = json.loads(sys.argv[1])
sys.path[:0] = request["paths"]
from supervision._reload.reexec import check_in_child
check_in_child(request)
"""


def _check_request(source: Source) -> dict[str, Any]:
    target = source.target
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None)
    paths = [os.getcwd()]
    if script and "-m" not in sys.orig_argv[1:2] and "-c" not in sys.orig_argv[1:2]:
        paths.insert(0, os.path.dirname(os.path.abspath(script)))
    request: dict[str, Any] = {"format": FORMAT, "paths": paths, "script": script}
    if isinstance(target, str):
        request["kind"] = "target"
        request["target"] = target
    elif isinstance(target, Supervisor):
        request["kind"] = "script"
    else:
        module = getattr(target, "__module__", None)
        qualname = getattr(target, "__qualname__", "")
        if module and module != "__main__" and "<locals>" not in qualname:
            request.update(kind="builder", module=module, qualname=qualname)
        else:
            request["kind"] = "script"
    return request


def check_in_child(request: dict[str, Any]) -> None:
    """The pre-exec check, run by the new code in a subprocess: exits non-zero
    with one line saying why, if this code cannot take the tree over."""
    try:
        if request["format"] not in READABLE:
            raise RuntimeError(f"this version of supervision cannot read handover format {request['format']}")
        kind = request["kind"]
        if kind == "target":
            from .target import build

            build(request["target"])
        elif kind == "builder":
            import importlib

            value: Any = importlib.import_module(request["module"])
            for name in request["qualname"].split("."):
                value = getattr(value, name)
            spec = value()
            if not isinstance(spec, Supervisor):
                raise TypeError(f"the builder returned {spec!r}, not a Supervisor")
        script = request.get("script")
        if kind == "script" and script:
            with open(script, "rb") as file:
                compile(file.read(), script, "exec")
    except BaseException as exc:
        import traceback

        traceback.print_exc(file=sys.stderr)
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    print("ok", flush=True)


async def check(source: Source) -> None:
    """Run the pre-exec check; ``ReloadError`` saying why if it fails.

    The subprocess runs in our session, so the reaper leaves it alone; we watch it
    through a pidfd and reap it ourselves. Its output goes to a file: a builder
    that prints a lot cannot block it."""
    argv = [
        sys.executable,
        *subprocess._args_from_interpreter_flags(),  # type: ignore[attr-defined]
        "-c",
        _CHECK,
        json.dumps(_check_request(source)),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", ENV)}
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryFile() as output:
        try:
            popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, env=env)
        except OSError as exc:
            raise ReloadError(f"re-exec refused: cannot run {sys.executable}: {exc.strerror or exc}") from exc
        try:
            pidfd = os.pidfd_open(popen.pid)
        except OSError as exc:  # EMFILE...: do not leave it running unwatched
            popen.kill()
            popen.wait()
            raise ReloadError(f"re-exec refused: cannot watch the check: {exc.strerror or exc}") from exc
        exited: asyncio.Future[None] = loop.create_future()
        loop.add_reader(pidfd, set_done, exited)
        try:
            done, _ = await asyncio.wait({exited}, timeout=CHECK_TIMEOUT)
        finally:  # cancelled too: never leave it running, or unreaped
            loop.remove_reader(pidfd)
            if not exited.done():
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            try:
                info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED)  # at once: it has exited, or was killed
            finally:
                os.close(pidfd)
        popen.returncode = -1 if info is None else info.si_status  # reaped here, not by subprocess
        output.seek(0)
        text = output.read().decode(errors="replace")
    if not done:
        raise ReloadError(f"re-exec refused: the check of the code on disk took more than {CHECK_TIMEOUT:g}s")
    lines = [line for line in text.splitlines() if line.strip()]
    if info is None or info.si_code != os.CLD_EXITED or info.si_status != 0 or lines[-1:] != ["ok"]:
        if text.strip():
            logger.error("re-exec: the check of the code on disk failed:\n%s", text.rstrip())
        why = lines[-1] if lines else "the check exited without a word"
        raise ReloadError(f"re-exec refused: the code on disk cannot take over: {why}")


# -- the store ------------------------------------------------------------------------


def encode_store(store: PathStore) -> dict[str, Any]:
    """Snapshots (each pickled on its own), start counts and state versions, by
    path. ``ReloadError`` names the path of a snapshot that cannot be pickled."""
    snapshots = []
    for path, value in store.snapshots.items():
        try:
            blob = pickle.dumps(value, protocol=_PICKLE_PROTOCOL)
        except Exception as exc:
            raise ReloadError(f"re-exec refused: the snapshot cannot be serialised: {exc!r}", path=path) from exc
        snapshots.append([list(path), base64.b64encode(blob).decode()])
    return {
        "snapshots": snapshots,
        "starts": [[list(path), n] for path, n in store.starts.items()],
        "versions": [[list(path), n] for path, n in store.versions.items()],
    }


def decode_snapshots(state: dict[str, Any]) -> dict[Path, Any]:
    """The snapshots of :func:`encode_store`; one that cannot be read is dropped (logged)."""
    found: dict[Path, Any] = {}
    for raw, blob in state["snapshots"]:
        path = tuple(raw)
        try:
            found[path] = pickle.loads(base64.b64decode(blob))
        except Exception as exc:
            logger.error("%s: re-exec: snapshot dropped, it cannot be read: %r", format_path(path), exc)
    return found


# -- the new image --------------------------------------------------------------------

_read = False
_pending: Handover | None = None
_claimed = False


def pending() -> Handover | None:
    """The handover of the previous image, if this process was just re-executed
    (read, and its memfd closed, on the first call)."""
    global _read, _pending
    if not _read:
        _read = True
        raw = os.environ.pop(ENV, None)
        if raw is not None:
            _pending = Handover.read(raw)
    return _pending


def claim() -> Handover | None:
    """The handover, for the first tree started in this image (``sv.start``)."""
    global _claimed
    found = pending()
    if found is None or _claimed:
        return None
    _claimed = True
    if found.target is not None:
        logger.info("re-exec: taking over %d OS children of %s", len(found.records), found.target)
    return found


@dataclass(slots=True)
class Resume:
    """The initial state of the new image's tree, by path: the OS processes it adopts,
    the supervisors that run on (rebuilt, but not restarted), and the declared
    children that stay terminated or gone. The runtime gives each supervisor its
    part (``Init(adopted, terminated, removed)``); nothing here emits an event."""

    adoptions: dict[Path, Adoption] = field(default_factory=dict)
    supervisors: set[Path] = field(default_factory=set)
    terminated: set[Path] = field(default_factory=set)
    removed: set[Path] = field(default_factory=set)
    restored: dict[Path, list[tuple[str, Args]]] = field(default_factory=dict)
    """By a dynamic supervisor's path: the children it ran, made again from its template."""


class Handover:
    """What the previous image handed over, and what the new one did with it."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.target: str | None = state.get("target")
        self.host: dict[str, Any] = state.get("host") or {}
        """What ``sv.run`` handed over (its control socket...)."""
        self.records = [ProcessRecord.from_json(record) for record in state["processes"]]
        self.exec_time = float(state["timings"]["exec"])
        self.read_time = time.monotonic()
        self.timings: dict[str, float] = state["timings"]
        self.resumed: set[Path] = set()
        """Paths that run on with the same incarnation (adopted processes, supervisors, held children)."""
        self.adopted: dict[Path, Adoption] = {}
        self.stopped: list[Path] = []
        self.replaced: list[Path] = []
        self.held: list[Path] = []
        self.gone: set[Path] = set()
        self.result: dict[str, Any] = {}
        """For the reply to ``supervision reexec``: what happened, and how long it took."""

    @classmethod
    def read(cls, raw: str) -> Handover | None:
        try:
            fd = int(raw)
            with open(fd, "rb", closefd=True) as file:
                data = file.read()
            if not data.startswith(MAGIC):
                raise ValueError("not a handover")
            state = json.loads(data[len(MAGIC) :])
            if state.get("pid") != os.getpid():
                return None  # not ours (a variable inherited by mistake): touch nothing
            if state.get("format") not in READABLE:
                raise ValueError(f"unknown handover format {state.get('format')!r}")
            return cls(state)
        except Exception as exc:
            logger.critical("re-exec: cannot read the handover (%r): killing the children left by the old image", exc)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCKED)
            kill_other_sessions(reap=True)
            return None

    async def prepare(
        self, loop: asyncio.AbstractEventLoop, spec: Supervisor, store: PathStore, sink: OutputSink
    ) -> Resume:
        """Before the tree starts: adopt the OS children, unblock the signals,
        restore the store, and stop what the new spec does not adopt. Returns the
        new tree's initial state."""
        set_child_subreaper()  # kept across execve; set again all the same
        reap = reaper()  # its SIGCHLD handler, before the signals are unblocked
        adoptions = [Adoption(record, loop, reap, sink) for record in self.records]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.Signals(n) for n in self.state["blocked"]])
        declared = dict(descendants(spec))
        resume = Resume()
        resume.restored = _restore_dynamic(spec, declared, decode_dynamic(self.state))
        self.gone = {tuple(path) for path in self.state["gone"]}
        for raw in (*self.state["terminated"], *self.state["gone"]):
            path = tuple(raw)
            if path in declared and not any(path[:n] in self.held for n in range(1, len(path))):
                self.held.append(path)
        held = set(self.held)
        leaving: list[tuple[Adoption, str]] = []
        for adoption in adoptions:
            path = adoption.record.path
            child = declared.get(path)
            if child is None or child.kind is not Kind.PROCESS:
                leaving.append((adoption, "dynamic" if adoption.record.dynamic else "no longer declared"))
            elif any(path[:n] in held for n in range(1, len(path) + 1)):
                leaving.append((adoption, "terminated"))
            elif launch(child) != adoption.record.launch:
                leaving.append((adoption, _CHANGED))
            else:
                resume.adoptions[path] = adoption
                self.adopted[path] = adoption
        for path in self.held:
            (resume.removed if path in self.gone else resume.terminated).add(path)
        resume.supervisors = {
            path
            for path, child in declared.items()
            if child.kind is Kind.SUPERVISOR and not any(path[:n] in held for n in range(1, len(path) + 1))
        }
        self.resumed = {*self.adopted, *held, *resume.supervisors}
        _restore_store(store, self.state["store"], declared)
        for adoption, why in leaving:
            logger.info("%s: re-exec: stopping pid %d (%s)", format_path(adoption.record.path), adoption.pid, why)
            (self.replaced if why == _CHANGED else self.stopped).append(adoption.record.path)
        await _all(adoption.terminate() for adoption, _ in leaving)
        return resume

    async def release_unclaimed(self) -> None:
        """After the tree started (or failed to): stop the processes it did not adopt."""
        left = [adoption for path, adoption in self.adopted.items() if not adoption.claimed]
        for adoption in left:
            self.stopped.append(adoption.record.path)
            del self.adopted[adoption.record.path]
        await _all(adoption.terminate() for adoption in left)

    def summarise(self) -> None:
        """Sum up, for the reply to ``supervision reexec`` and the log."""
        lost = sorted(format_path(path) for path, adoption in self.adopted.items() if adoption.lost is not None)
        self.result = {
            "adopted": sorted(format_path(path) for path, a in self.adopted.items() if a.lost is None),
            "lost": lost,
            "stopped": sorted(format_path(path) for path in self.stopped),
            "replaced": sorted(format_path(path) for path in self.replaced),
            "check_ms": round(self.timings.get("check", 0.0) * 1000, 1),
            "workers_ms": round(self.timings.get("workers", 0.0) * 1000, 1),
            "startup_ms": round((self.read_time - self.exec_time) * 1000, 1),
            "handover_ms": round((time.monotonic() - self.exec_time) * 1000, 1),
        }
        logger.info(
            "re-exec: done in %.0f ms: %d adopted, %d lost, %d stopped",
            self.result["handover_ms"],
            len(self.result["adopted"]),
            len(lost),
            len(self.stopped),
        )


def _restore_dynamic(
    spec: Supervisor, declared: dict[Path, ChildSpec], handed: dict[Path, list[tuple[str, Args]]]
) -> dict[Path, list[tuple[str, Args]]]:
    """The children of the dynamic supervisors still there in the new spec, made
    from its template with their arguments; each added to ``declared`` (so that its
    process is adopted if it runs the same thing, and its snapshot kept)."""
    restored: dict[Path, list[tuple[str, Args]]] = {}
    for path, children in handed.items():
        owner = spec if not path else declared.get(path)
        sup = owner.start if isinstance(owner, ChildSpec) else owner
        if not isinstance(sup, DynamicSupervisor):
            continue  # gone from the code, or no longer dynamic: their processes are stopped
        for id, args in children:
            try:
                child = sup.template.child(id, args)
            except Exception as exc:  # arguments the new template cannot take
                logger.error("%s: re-exec: dropped: %r", format_path((*path, id)), exc)
                continue
            declared.setdefault((*path, id), child)
            restored.setdefault(path, []).append((id, args))
    return restored


def _restore_store(store: PathStore, state: dict[str, Any], declared: dict[Path, ChildSpec]) -> None:
    """Snapshots, start counts and state versions of the paths still declared (an
    adopted child is not started again, so its count stays as it was)."""
    for path, value in decode_snapshots(state).items():
        if path in declared:
            store.snapshots[path] = value
    for raw, version in state["versions"]:
        if tuple(raw) in declared:
            store.versions[tuple(raw)] = int(version)
    for raw, count in state["starts"]:
        path = tuple(raw)
        if path in declared:
            store.starts[path] = int(count)


async def _all(operations: Iterator[Any]) -> None:
    tasks = [asyncio.ensure_future(operation) for operation in operations]
    if tasks:
        await asyncio.gather(*tasks)

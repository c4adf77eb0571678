"""``supervision simulate``: "what happens if..." on a tree, on a virtual clock.

A *scenario* is a few statements, separated by ``;`` or new lines::

    crash db x3 within 10s; wait 30s; crash cache

=====================================  =============================================
statement                              what happens
=====================================  =============================================
``crash PATH``                         the running child at PATH crashes
``crash PATH xN``                      ... N times, one after the other
``crash PATH xN within D``             ... N times spread evenly over D (the first
                                       at once, the last D later)
``crash PATH xN every D``              ... N times, D apart
``exit PATH [STATUS|normal|shutdown]`` it exits by itself: status 0 (the default)
                                       or ``normal`` is a normal exit, another
                                       status a crash, ``shutdown`` a shutdown
``fail PATH [xN]``                     its next N start attempts fail
``wait D``                             time passes: restarts delayed by a backoff
                                       and retries happen
``stop PATH`` / ``start PATH``         ``supervision stop`` / ``start`` of PATH
``restart PATH``                       ``supervision restart`` of PATH
=====================================  =============================================

A duration ``D`` is a number with a unit: ``500ms``, ``10s``, ``2m``, ``1h``
(a bare number is seconds). ``#`` starts a comment to the end of the line.

:func:`parse` turns the text into :class:`Statement` values, checking every
path against the tree's spec; a mistake is a :class:`ScenarioError` naming the
line and column. :func:`run` runs the statements through the reference
simulator of ``supervision.testing`` (the real core, a virtual clock: nothing
is started, no time passes) and returns the :class:`Timeline`: every event,
and after each statement the restart windows that changed (how many restarts
each supervisor counted within its ``period``, and when a full window frees a
slot again). :func:`format_timeline` prints it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .._core.errors import ScenarioError, StartError, SupervisionError, TooManyRestarts
from .._core.events import (
    ChildExited,
    ChildStarted,
    ChildStartFailed,
    Event,
    ExitReason,
    RestartScheduled,
    SupervisorGaveUp,
    SupervisorStopped,
)
from .._core.paths import Path, format_path
from .._core.spec import ChildSpec, Supervisor
from ._schedule import (
    Advance,
    Crash,
    Exit,
    FailNextStart,
    RestartChild,
    SimulatedStartFailure,
    Step,
    TerminateChild,
)
from ._simulate import Simulator

Verb = Literal["crash", "exit", "fail", "wait", "stop", "start", "restart"]
VERBS: tuple[Verb, ...] = ("crash", "exit", "fail", "wait", "stop", "start", "restart")

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)?$")
_COUNT = re.compile(r"^[xX](\d+)$")


@dataclass(frozen=True)
class Statement:
    """One statement of a scenario; ``offset`` is where it begins in the text."""

    verb: Verb
    offset: int
    text: str
    path: Path = ()
    times: int = 1
    spacing: float = 0.0
    """Seconds between two of the ``times`` crashes."""
    seconds: float = 0.0
    """``wait``: how long."""
    status: int | Literal["normal", "shutdown"] = 0
    """``exit``: the exit status, or the reason."""

    def steps(self) -> Iterator[tuple[str, Step]]:
        """The simulator's steps, each with a label ("" for a step that only continues a statement)."""
        name = format_path(self.path)
        if self.verb == "crash":
            for n in range(self.times):
                if n and self.spacing:
                    yield "", Advance(self.spacing)
                label = f"crash {name}" + (f" ({n + 1} of {self.times})" if self.times > 1 else "")
                yield label, Crash(self.path, SimulatedCrashOf(self.path))
        elif self.verb == "exit":
            status = self.status
            if status == "shutdown":
                yield f"exit {name} (shutdown)", Exit(self.path, ExitReason.SHUTDOWN)
            elif status in ("normal", 0):
                yield f"exit {name} (status 0)", Exit(self.path, ExitReason.NORMAL)
            else:
                yield f"exit {name} (status {status})", Exit(self.path, ExitReason.CRASH, SimulatedCrashOf(self.path))
        elif self.verb == "fail":
            label = (
                f"the next {self.times} starts of {name} fail" if self.times > 1 else f"the next start of {name} fails"
            )
            yield label, FailNextStart(self.path, self.times)
        elif self.verb == "wait":
            yield f"wait {_seconds(self.seconds)}", Advance(self.seconds)
        elif self.verb == "stop":
            yield f"stop {name}", TerminateChild(self.path)
        elif self.verb == "start":
            yield f"start {name}", RestartChild(self.path)
        else:  # restart: stop it if it runs, then start it
            yield f"restart {name}", TerminateChild(self.path)
            yield "", RestartChild(self.path)


class SimulatedCrashOf(Exception):
    """The error of a crash a scenario makes happen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{format_path(path)} crashed (simulated)")


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    text: str
    offset: int


def _statements(text: str) -> Iterator[list[_Token]]:
    """The tokens of each statement (separated by ``;`` or a new line)."""
    tokens: list[_Token] = []
    for match in re.finditer(r"#[^\n]*|[;\n]|[^\s;#]+", text):
        word = match.group()
        if word.startswith("#"):
            continue
        if word in (";", "\n"):
            if tokens:
                yield tokens
            tokens = []
            continue
        tokens.append(_Token(word, match.start()))
    if tokens:
        yield tokens


def parse(text: str, spec: Supervisor | None = None) -> list[Statement]:
    """Read a scenario; with ``spec``, every path must name a child of that tree."""
    statements = [_statement(text, tokens, spec) for tokens in _statements(text)]
    if not statements:
        raise ScenarioError(text, 0, "an empty scenario: write e.g. 'crash web x3 within 10s; wait 30s'")
    return statements


def _statement(text: str, tokens: list[_Token], spec: Supervisor | None) -> Statement:
    verb_token = tokens[0]
    verb = verb_token.text.lower()
    if verb not in VERBS:
        hint = _hint(verb, VERBS)
        raise ScenarioError(
            text, verb_token.offset, f"unknown statement {verb_token.text!r}{hint}; expected one of {', '.join(VERBS)}"
        )
    source = text[verb_token.offset : tokens[-1].offset + len(tokens[-1].text)]
    rest = tokens[1:]
    end = tokens[-1].offset + len(tokens[-1].text)

    def need(what: str) -> _Token:
        if not rest:
            raise ScenarioError(text, end, f"'{verb}' needs {what}")
        return rest.pop(0)

    def done() -> None:
        if rest:
            raise ScenarioError(text, rest[0].offset, f"unexpected {rest[0].text!r} after '{source_before(rest[0])}'")

    def source_before(token: _Token) -> str:
        return text[verb_token.offset : token.offset].strip()

    if verb == "wait":
        seconds = _duration(text, need("a duration, like 'wait 30s'"))
        done()
        return Statement("wait", verb_token.offset, source, seconds=seconds)
    path_token = need("the path of a child, like 'db' or 'db/pool'")
    path = _path(text, path_token, spec)
    if verb == "crash":
        times, spacing = 1, 0.0
        if rest and _COUNT.match(rest[0].text):
            times = _count(text, rest.pop(0))
        if rest and rest[0].text.lower() in ("within", "every"):
            spread = rest.pop(0)
            duration = _duration(text, need(f"a duration after '{spread.text}', like '{spread.text} 10s'"))
            if times == 1:
                raise ScenarioError(
                    text, spread.offset, f"'{spread.text}' needs a count first, like 'crash db x3 {spread.text} 10s'"
                )
            spacing = duration / (times - 1) if spread.text.lower() == "within" else duration
        done()
        return Statement("crash", verb_token.offset, source, path, times=times, spacing=spacing)
    if verb == "fail":
        times = _count(text, rest.pop(0)) if rest and _COUNT.match(rest[0].text) else 1
        done()
        return Statement("fail", verb_token.offset, source, path, times=times)
    if verb == "exit":
        status: int | Literal["normal", "shutdown"] = 0
        if rest:
            token = rest.pop(0)
            word = token.text.lower()
            if word in ("normal", "shutdown"):
                status = "normal" if word == "normal" else "shutdown"
            elif word.isdigit() and int(word) <= 255:
                status = int(word)
            else:
                raise ScenarioError(
                    text, token.offset, f"expected an exit status (0-255), 'normal' or 'shutdown', got {token.text!r}"
                )
        done()
        return Statement("exit", verb_token.offset, source, path, status=status)
    done()
    return Statement(verb, verb_token.offset, source, path)


def _duration(text: str, token: _Token) -> float:
    match = _DURATION.match(token.text.lower())
    if not match:
        raise ScenarioError(text, token.offset, f"expected a duration like '10s', '500ms' or '2m', got {token.text!r}")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not math.isfinite(seconds):
        raise ScenarioError(text, token.offset, f"a duration must be finite, got {token.text!r}")
    return seconds


def _count(text: str, token: _Token) -> int:
    match = _COUNT.match(token.text)
    assert match is not None
    times = int(match.group(1))
    if not 1 <= times <= 10_000:
        raise ScenarioError(text, token.offset, f"a count must be between x1 and x10000, got {token.text!r}")
    return times


def _path(text: str, token: _Token, spec: Supervisor | None) -> Path:
    path = tuple(part for part in token.text.split("/") if part)
    if not path:
        raise ScenarioError(text, token.offset, f"expected the path of a child, got {token.text!r}")
    if spec is None:
        return path
    supervisor: Supervisor | None = spec
    for depth, id in enumerate(path):
        children = supervisor.children if supervisor is not None else ()
        found: ChildSpec | None = next((child for child in children if child.id == id), None)
        if found is None:
            offset = token.offset + len("/".join(path[:depth])) + (1 if depth else 0)
            where = f"under {format_path(path[:depth])}" if depth else "in the tree"
            if supervisor is None:
                raise ScenarioError(
                    text, offset, f"{format_path(path[:depth])} is not a supervisor: it has no children"
                )
            hint = _hint(id, [child.id for child in children])
            raise ScenarioError(text, offset, f"no child {id!r} {where}{hint}")
        supervisor = found.start if isinstance(found.start, Supervisor) else None
    return path


def _hint(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# -- running --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A supervisor's restart intensity window at one moment: ``restarts`` of the
    last ``period`` seconds against its ``intensity``. ``frees_at``: when the
    oldest restart leaves the window (None if it is empty)."""

    path: Path
    restarts: int
    intensity: int
    period: float
    frees_at: float | None
    last: float | None
    """When the latest restart was counted (None: never)."""

    @property
    def full(self) -> bool:
        """One more restart now would make the supervisor give up."""
        return self.restarts >= self.intensity


@dataclass(frozen=True)
class Entry:
    """One line of a timeline: a statement's label, an event, or a window."""

    time: float
    label: str = ""
    event: Event | None = None
    window: Window | None = None


@dataclass
class Timeline:
    """What :func:`run` found: the entries in order, and how the root ended."""

    entries: list[Entry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    root: Literal["running", "gave up", "stopped", "failed to start"] = "running"
    end: float = 0.0

    @property
    def gave_up(self) -> list[Path]:
        """The supervisors that gave up, in order (``()`` is the root)."""
        return [event.path for event in self.events if isinstance(event, SupervisorGaveUp)]


def run(spec: Supervisor, statements: Sequence[Statement]) -> Timeline:
    """Start ``spec`` in the simulator, apply the statements, and return the timeline."""
    simulator = Simulator(spec)
    timeline = Timeline()
    seen = 0

    def record() -> None:
        nonlocal seen
        for event in simulator.events[seen:]:
            timeline.entries.append(Entry(event.time, event=event))
        seen = len(simulator.events)

    windows = _windows(simulator)
    timeline.entries.append(Entry(0.0, label="start"))
    failed = simulator.start()
    record()
    if failed is not None:
        timeline.root = "failed to start"
    for statement in statements:
        for label, step in statement.steps():
            if not simulator.running:
                break
            if label:
                timeline.entries.append(Entry(simulator.now, label=label))
            if isinstance(step, (Crash, Exit)):
                status = _status(simulator, step.path)
                if status != "running":
                    timeline.entries.append(
                        Entry(simulator.now, label=f"{format_path(step.path)} is {status}: nothing happens")
                    )
                    continue
            simulator.apply(step)
            record()
            now = _windows(simulator)
            for path, window in now.items():
                before = windows.get(path)
                counted = before is None or window.last != before.last or window.restarts > before.restarts
                if window.last is not None and counted and window.restarts:  # a restart was counted
                    timeline.entries.append(Entry(simulator.now, window=window))
            windows = now
    timeline.events = list(simulator.events)
    timeline.end = simulator.now
    if timeline.root == "running" and not simulator.running:
        timeline.root = "gave up" if () in timeline.gave_up else "stopped"
    return timeline


def _status(simulator: Simulator, path: Path) -> str:
    """The status of the child at ``path`` ("not running" if its supervisor is not)."""
    try:
        children = simulator.which_children(path[:-1])
    except SupervisionError:
        return "not running"
    for info in children:
        if info.id == path[-1]:
            return str(info.status)
    return "not running"


def _windows(simulator: Simulator) -> dict[Path, Window]:
    """The restart window of every running supervisor, from the simulator's cores."""
    found: dict[Path, Window] = {}
    if not simulator.running:
        return found
    now = simulator.now
    stack = [simulator.root]
    while stack:
        node = stack.pop()
        assert node is not None
        core = node.core
        spec = core.spec
        recent = [t for t in core.restarts if now - t <= spec.period]
        frees_at = recent[0] + spec.period if recent else None
        last = core.restarts[-1] if core.restarts else None
        found[core.path] = Window(core.path, len(recent), spec.intensity, spec.period, frees_at, last)
        for child in core.children.values():  # a child with a restart limit of its own
            own = child.spec.intensity
            if own is None:
                continue
            recent = [t for t in child.restarts if now - t <= child.spec.period]
            frees_at = recent[0] + child.spec.period if recent else None
            last = child.restarts[-1] if child.restarts else None
            found[child.path] = Window(child.path, len(recent), own, child.spec.period, frees_at, last)
        stack.extend(nested for nested in node.nested.values() if nested.exit is None)
    return found


# -- printing -------------------------------------------------------------------------------


def format_timeline(timeline: Timeline, *, windows: bool = True) -> str:
    """The timeline as text: one line per event, the statements as headings."""
    lines: list[str] = []
    width = max([len(format_path(e.event.path)) for e in timeline.entries if e.event is not None] + [4])
    for entry in timeline.entries:
        stamp = f"{_seconds(entry.time):>9}"
        if entry.label:
            lines.append(f"{stamp}  -- {entry.label}")
        elif entry.event is not None:
            if isinstance(entry.event, SupervisorStopped) and entry.event.path:
                continue  # its parent reports it stopped
            lines.append(f"{stamp}  {format_path(entry.event.path):<{width}}  {describe(entry.event)}")
        elif entry.window is not None and windows:
            lines.append(f"{' ' * 9}  {format_path(entry.window.path):<{width}}  {_window(entry.window)}")
    lines.append("")
    lines.append(outcome(timeline))
    return "\n".join(lines)


def describe(event: Event) -> str:
    """What an event means, in a few words."""
    if isinstance(event, ChildStarted):
        return "started" if event.starts == 1 else f"restarted (start {event.starts})"
    if isinstance(event, ChildExited):
        if event.reason is ExitReason.CRASH:
            return "crashed" + _error(event.error)
        if event.reason is ExitReason.SHUTDOWN:
            if isinstance(event.error, TooManyRestarts):
                return "exited: it gave up"
            return "stopped"
        return "exited normally"
    if isinstance(event, ChildStartFailed):
        return "failed to start" + _error(event.error)
    if isinstance(event, RestartScheduled):
        return f"restart in {_seconds(event.delay)}" if event.delay else "start retried at once"
    if isinstance(event, SupervisorGaveUp):
        error = event.error
        if isinstance(error, TooManyRestarts):
            return f"GIVES UP: more than {error.intensity} restarts within {_seconds(error.period)}"
        return f"GIVES UP{_error(error)}"
    if isinstance(event, SupervisorStopped):
        return "stopped"
    return type(event).__name__


def _window(window: Window) -> str:
    text = f"restart window: {window.restarts} of {window.intensity} within {_seconds(window.period)}"
    if window.full and window.frees_at is not None:
        text += f" -- FULL until {_seconds(window.frees_at)}: one more restart before then and it gives up"
    return text


def outcome(timeline: Timeline) -> str:
    """The last line: how the root stands at the end."""
    end = _seconds(timeline.end)
    if timeline.root == "gave up":
        return f"at {end}: the root gave up; `supervision run` exits with status 1"
    if timeline.root == "failed to start":
        return f"at {end}: the tree failed to start; `supervision run` exits with status 1"
    if timeline.root == "stopped":
        return f"at {end}: the root stopped (auto_shutdown); `supervision run` exits with status 0"
    counts: dict[Path, int] = {}
    for path in timeline.gave_up:
        counts[path] = counts.get(path, 0) + 1
    if counts:
        gave_up = [format_path(path) + (f" ({n} times)" if n > 1 else "") for path, n in counts.items()]
        return f"at {end}: the root is running; gave up on the way: {', '.join(gave_up)}"
    return f"at {end}: the root is running"


def _error(error: BaseException | None) -> str:
    if isinstance(error, StartError) and isinstance(error.__cause__, SimulatedStartFailure):
        return ""
    if error is None or isinstance(error, (SimulatedCrashOf, SimulatedStartFailure)):
        return ""
    return f" ({type(error).__name__})"


def _seconds(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"

"""Specs: immutable values that declare a tree, validated once at construction.

Inside the core and the runtime the data is trusted; every check lives here.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import inspect
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, TypeAlias

from pyrsistent import PMap, pmap

from .. import ready as _ready
from .errors import SpecError
from .leader import Lease, leader_problem
from .paths import Path
from .settings import NO_SETTINGS, OutputSpec, Settings
from .snapshot import check_immutable

if TYPE_CHECKING:
    from ..health import Probe
    from .listen import Listen


class Kind(enum.StrEnum):
    """What a child runs: the closed set of child kinds (``ChildSpec.kind``, ``ChildInfo.kind``).

    The runtime dispatches on it explicitly; there is no registry of kinds.
    """

    WORKER = "worker"
    """An ``async def f(ctx)`` function, run as an asyncio task."""
    PROCESS = "process"
    """An OS process (:func:`supervision.process`)."""
    SUPERVISOR = "supervisor"
    """A nested :class:`Supervisor`."""


class Strategy(enum.StrEnum):
    """How a supervisor restarts its children when one of them fails.

    >>> import supervision as sv
    >>> sv.Supervisor(strategy="rest_for_one").strategy is sv.Strategy.REST_FOR_ONE
    True
    >>> list(sv.Supervisor(strategy=sv.Strategy.REST_FOR_ONE).plan(("a", "b", "c"), "b"))
    ['b', 'c']
    """

    ONE_FOR_ONE = "one_for_one"
    """Restart the failed child only."""
    ONE_FOR_ALL = "one_for_all"
    """Stop all other children right to left, then start all left to right."""
    REST_FOR_ONE = "rest_for_one"
    """Restart the failed child and the children started after it."""


class Restart(enum.StrEnum):
    """When a child is restarted after it exits.

    >>> import supervision as sv
    >>> async def w(ctx): ...
    >>> sv.child("w", w, restart="temporary").restart is sv.Restart.TEMPORARY
    True
    >>> [restart.value for restart in sv.Restart]
    ['permanent', 'transient', 'temporary']
    """

    PERMANENT = "permanent"
    """Always restarted."""
    TRANSIENT = "transient"
    """Restarted only after an abnormal exit (a crash)."""
    TEMPORARY = "temporary"
    """Never restarted; removed from its supervisor when it exits."""


class AutoShutdown(enum.StrEnum):
    """When significant children exiting make their supervisor stop (OTP 24).

    >>> import supervision as sv
    >>> async def job(ctx): ...
    >>> spec = sv.Supervisor([sv.child("job", job, restart="transient", significant=True)],
    ...                      auto_shutdown="any_significant")
    >>> spec.auto_shutdown is sv.AutoShutdown.ANY_SIGNIFICANT, sv.AutoShutdown.NEVER == "never"
    (True, True)
    """

    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    ALL_SIGNIFICANT = "all_significant"


class RestartMode(enum.StrEnum):
    """How the supervisor replaces a running child on purpose (an operator's
    ``restart``, a reload that changed its spec, a re-exec that must replace it).
    Restarts after a crash, and group restarts, always stop first.

    >>> async def work(ctx): ...
    >>> child("w", work, restart_mode="overlap").restart_mode
    <RestartMode.OVERLAP: 'overlap'>
    """

    STOP_START = "stop_start"
    """Stop the old incarnation, then start the new one."""
    OVERLAP = "overlap"
    """Start the new incarnation, wait until it is ready, then stop the old one."""


class _Special(enum.Enum):
    BRUTAL_KILL = "brutal_kill"
    INFINITY = "infinity"

    def __repr__(self) -> str:
        return f"sv.{self.name}"


BRUTAL_KILL: Final = _Special.BRUTAL_KILL
"""``shutdown=BRUTAL_KILL``: kill the child at once, without asking it to stop.

>>> import supervision as sv
>>> async def cache(ctx): ...
>>> sv.child("cache", cache, shutdown=sv.BRUTAL_KILL).shutdown is sv.BRUTAL_KILL
True
"""
INFINITY: Final = _Special.INFINITY
"""``shutdown=INFINITY``: wait for ever for the child to stop.

>>> import supervision as sv
>>> sv.child("db", sv.Supervisor()).shutdown is sv.INFINITY   # a supervisor's default
True
"""

ShutdownSpec: TypeAlias = "float | Literal[_Special.BRUTAL_KILL, _Special.INFINITY]"


def _enum(cls: type[enum.Enum], value: object, path: Path, field: str) -> Any:
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in cls)
        raise SpecError(path, field, f"unknown {field} {value!r}; expected one of {choices}") from None


def _number(value: object, path: Path, field: str, *, integer: bool = False, infinite: bool = False) -> Any:
    """A number >= 0, checked without ever raising anything but ``SpecError``.

    An integer may be as large as Python allows (``intensity=10**400`` only
    means "never give up"). A duration must fit a float: an int too large for
    one is refused, rather than rounded to infinity behind the user's back.
    NaN is always refused; ``inf`` only where ``infinite`` says that waiting
    for ever makes sense (the field's docs say what it means).
    """
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise SpecError(path, field, f"must be {kind}, got {value!r}")
    if value < 0:  # type: ignore[operator]
        raise SpecError(path, field, f"must be >= 0, got {_short(value)}")
    if integer:
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            hint = "; use float('inf') to mean for ever" if infinite else ""
            raise SpecError(path, field, f"must fit a float, got {_short(value)}{hint}") from None
    if math.isnan(value):  # type: ignore[arg-type]
        raise SpecError(path, field, "must be a number >= 0, got nan")
    if math.isinf(value) and not infinite:  # type: ignore[arg-type]
        raise SpecError(path, field, "must be finite, got inf")
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} digits)"


def _shutdown(value: object, path: Path) -> ShutdownSpec:
    if isinstance(value, _Special):
        return value
    if isinstance(value, str):
        return _enum(_Special, value, path, "shutdown")  # type: ignore[no-any-return]
    number = _number(value, path, "shutdown", infinite=True)
    return INFINITY if math.isinf(number) else float(number)


def _timeout(value: object, path: Path, field: str) -> float:
    """``ready_timeout``: seconds, or for ever (``inf`` or ``sv.INFINITY``)."""
    if value is INFINITY:
        return math.inf
    return float(_number(value, path, field, infinite=True))


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delays between consecutive restarts (or retries) of one child.

    The n-th consecutive restart waits ``min(maximum, initial * factor**(n-1))``,
    scaled by a uniform random factor in ``[1-jitter, 1+jitter]`` and capped at
    ``maximum``. A child that stays running ``reset_after`` seconds (None: ``maximum``)
    starts again at n = 1. The intensity window still decides when to give up.

    >>> import random
    >>> Backoff(initial=0.5, jitter=0).delay(3, random.Random(0))
    2.0
    """

    initial: float = 0.1
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    reset_after: float | None = None

    def __post_init__(self) -> None:
        path: Path = ()
        # A finite delay is waited out, so each must be finite; only "never
        # start again at n = 1" (reset_after=inf) makes sense as infinite.
        for name in ("initial", "maximum", "factor", "jitter"):
            object.__setattr__(self, name, _number(getattr(self, name), path, f"backoff.{name}"))
        if self.reset_after is not None:
            object.__setattr__(
                self, "reset_after", _number(self.reset_after, path, "backoff.reset_after", infinite=True)
            )
        if self.factor < 1:
            raise SpecError(path, "backoff.factor", f"must be >= 1, got {self.factor!r}")
        if self.jitter > 1:
            raise SpecError(path, "backoff.jitter", f"must be <= 1, got {self.jitter!r}")
        if self.initial > self.maximum:
            raise SpecError(path, "backoff.initial", "must not exceed backoff.maximum")

    def delay(self, n: int, rng: random.Random) -> float:
        """The delay before the n-th consecutive restart (n >= 1)."""
        exponent = min(n - 1, 1000)  # factor**1000 overflows long after maximum caps it
        try:
            base = min(self.maximum, self.initial * self.factor**exponent)
        except OverflowError:
            base = self.maximum
        if self.jitter:
            base *= rng.uniform(1 - self.jitter, 1 + self.jitter)
        return min(self.maximum, base)

    @property
    def reset_time(self) -> float:
        """Seconds of running after which the next restart counts as the first again."""
        return self.maximum if self.reset_after is None else self.reset_after


_UNSET: Any = object()
_EMPTY: PMap[Any, Any] = pmap()


@dataclass(frozen=True, slots=True, eq=True)
class ChildSpec:
    """One child of a supervisor. Build it with :func:`child` or :func:`process`.

    ``start`` is an ``async def f(ctx)`` function (a worker), a :class:`Supervisor`
    (a nested supervisor) or a ``Process`` (an OS process, see :func:`process`).

    >>> import dataclasses, supervision as sv
    >>> async def w(ctx): ...
    >>> spec = sv.child("w", w, restart="transient")
    >>> print(spec.kind, spec.restart, spec.initial_state)
    worker transient pmap({})
    >>> dataclasses.replace(spec, shutdown=1.0).shutdown
    1.0

    """

    id: str
    start: Any
    restart: Restart = Restart.PERMANENT
    shutdown: ShutdownSpec = 5.0
    significant: bool = False
    ready: bool = False
    ready_timeout: float = 30.0
    state: Any = None
    state_version: int = 0
    migrate: Callable[[Any, int], Any] | None = None
    intensity: int | None = None
    """A restart limit of the child's own (None: none); see :func:`child`."""
    period: float = 5.0
    backoff: Backoff | None = None
    """The child's own backoff (None: its supervisor's)."""
    watchdog: float | None = None
    """Seconds within which the child must show a sign of life once ready (None: no watchdog)."""
    health: Probe | None = None
    """Its health probe (``sv.health``), or None."""
    sockets: tuple[Listen, ...] = ()
    """Listening sockets its supervisor holds for it (``sv.listen``)."""
    restart_mode: RestartMode = RestartMode.STOP_START
    """How it is replaced on purpose (see :class:`RestartMode`)."""
    kind: Kind = dataclasses.field(init=False, repr=False, compare=False)
    """``"worker"``, ``"process"`` or ``"supervisor"`` (a :class:`Kind`)."""

    def __post_init__(self) -> None:
        path: Path = (self.id,) if isinstance(self.id, str) else ()
        _check_id(self.id, path)

        start = self.start
        if not (isinstance(start, (Supervisor, Process)) or _is_async_function(start)):
            raise SpecError(
                path,
                "start",
                f"must be an 'async def' function, a Supervisor or a process, got {start!r}",
            )
        set_ = object.__setattr__
        kind = (
            Kind.SUPERVISOR
            if isinstance(start, Supervisor)
            else Kind.PROCESS
            if isinstance(start, Process)
            else Kind.WORKER
        )
        set_(self, "kind", kind)
        set_(self, "restart", _enum(Restart, self.restart, path, "restart"))
        set_(self, "shutdown", _shutdown(self.shutdown, path))
        set_(self, "ready_timeout", _timeout(self.ready_timeout, path, "ready_timeout"))
        _number(self.state_version, path, "state_version", integer=True)
        if self.intensity is not None:
            _number(self.intensity, path, "intensity", integer=True)
        set_(self, "period", float(_number(self.period, path, "period")))
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise SpecError(path, "backoff", f"must be a Backoff or None, got {self.backoff!r}")
        for flag in ("significant", "ready"):
            if not isinstance(getattr(self, flag), bool):
                raise SpecError(path, flag, f"must be True or False, got {getattr(self, flag)!r}")
        if self.significant and self.restart is Restart.PERMANENT:
            raise SpecError(path, "significant", "a permanent child cannot be significant")
        if self.ready and isinstance(start, Supervisor):
            raise SpecError(path, "ready", "a supervisor is ready once its children started")
        _check_liveness(self, path, kind)
        if self.migrate is not None and not callable(self.migrate):
            raise SpecError(path, "migrate", f"must be callable, got {self.migrate!r}")
        if self.state is not None:
            try:
                check_immutable(self.state)
            except TypeError as exc:
                raise SpecError(path, "state", str(exc)) from None

    @property
    def initial_state(self) -> Any:
        """The snapshot a child sees before it ever saved one."""
        return _EMPTY if self.state is None else self.state


def _check_liveness(spec: ChildSpec, path: Path, kind: Kind) -> None:
    """The fields of ``docs/health.md``: ``watchdog``, ``health``, ``sockets``, ``restart_mode``."""
    set_ = object.__setattr__
    set_(spec, "restart_mode", _enum(RestartMode, spec.restart_mode, path, "restart_mode"))
    if spec.watchdog is not None:
        set_(spec, "watchdog", float(_number(spec.watchdog, path, "watchdog")))
        if spec.watchdog == 0:
            raise SpecError(path, "watchdog", "must be > 0 (or None for no watchdog)")
    if spec.health is not None:
        from ..health import PROBES  # loaded here: a spec without a probe (and the CLI) never needs it

        if not isinstance(spec.health, PROBES):
            message = f"must be sv.health.http/tcp/exec/call(...) or None, got {spec.health!r:.60}"
            raise SpecError(path, "health", message)
        spec.health.check(path)
    if spec.sockets != ():
        from .listen import check_sockets  # as above

        set_(spec, "sockets", check_sockets(spec.sockets, path))
    if kind is Kind.SUPERVISOR:
        for field, value in (("watchdog", spec.watchdog), ("health", spec.health), ("sockets", spec.sockets)):
            if value:
                raise SpecError(path, field, "a supervisor's children have their own; a supervisor has none")
        if spec.restart_mode is RestartMode.OVERLAP:
            raise SpecError(path, "restart_mode", "a supervisor cannot overlap its own restart")


def _check_id(id: object, path: Path) -> None:
    if not isinstance(id, str):
        raise SpecError(path, "id", f"must be a string, got {id!r}")
    if not id:
        raise SpecError(path, "id", "must not be empty")
    if "/" in id:
        raise SpecError(path, "id", "must not contain '/'")


def _is_async_function(fn: object) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return not inspect.isfunction(fn) and not inspect.ismethod(fn) and inspect.iscoroutinefunction(call)


def child(
    id: str,
    start: Any,
    *,
    restart: Restart | str = Restart.PERMANENT,
    shutdown: ShutdownSpec | str = _UNSET,
    significant: bool = False,
    ready: bool = False,
    ready_timeout: float = 30.0,
    state: Any = None,
    state_version: int = 0,
    migrate: Callable[[Any, int], Any] | None = None,
    intensity: int | None = None,
    period: float = 5.0,
    backoff: Backoff | None = None,
    watchdog: float | None = None,
    health: Probe | None = None,
    sockets: Iterable[Listen] = (),
    restart_mode: RestartMode | str = RestartMode.STOP_START,
) -> ChildSpec:
    """Declare a child: an ``async def f(ctx)`` worker or a nested :class:`Supervisor`.

    ``shutdown`` defaults to 5 seconds for a worker and :data:`INFINITY` for a
    supervisor, as in OTP.

    ``intensity`` and ``period`` (beyond OTP) give the child a restart limit of
    its own: its restarts are counted in its own window instead of its
    supervisor's; when it has more than ``intensity`` within ``period`` seconds
    it gives up, as a nested supervisor around it alone would: a permanent child
    is restarted all the same, counted against the supervisor's intensity, a
    transient or temporary one stays terminated. ``backoff`` replaces the
    supervisor's for this child. See ``docs/concepts.md``.

    ``watchdog`` (seconds): once ready, the worker must call ``ctx.heartbeat()``
    at least that often, or it is cancelled and restarted as a crash
    (``sv.WatchdogTimeout``). ``health``: a probe (``sv.health.call(fn)``) run
    while it runs. ``sockets``: listening sockets (``sv.listen(...)``) held by
    the supervisor, given as ``ctx.sockets``. ``restart_mode="overlap"``: an
    operator's restart or a reload starts the new incarnation and waits until
    it is ready before stopping the old. See ``docs/health.md``.

    >>> async def work(ctx): ...
    >>> child("work", work, restart="transient").restart
    <Restart.TRANSIENT: 'transient'>
    """
    if shutdown is _UNSET:
        shutdown = INFINITY if isinstance(start, Supervisor) else 5.0
    return ChildSpec(
        id=id,
        start=start,
        restart=restart,  # type: ignore[arg-type]  # normalised in __post_init__
        shutdown=shutdown,  # type: ignore[arg-type]
        significant=significant,
        ready=ready,
        ready_timeout=ready_timeout,
        state=state,
        state_version=state_version,
        migrate=migrate,
        intensity=intensity,
        period=period,
        backoff=backoff,
        watchdog=watchdog,
        health=health,
        sockets=sockets,  # type: ignore[arg-type]  # checked and made a tuple by ChildSpec
        restart_mode=restart_mode,  # type: ignore[arg-type]
    )


def stop_time(children: Iterable[ChildSpec]) -> float:
    """The longest a supervisor takes to stop ``children``: they stop one after
    another, each within its ``shutdown`` (``math.inf`` for ``INFINITY``); a
    nested supervisor with ``shutdown=INFINITY`` takes as long as its own children."""

    def one(child: ChildSpec) -> float:
        nested = child.start if isinstance(child.start, Supervisor) else None
        if child.shutdown is BRUTAL_KILL:
            return 0.0
        if child.shutdown is INFINITY:
            return stop_time(nested.children) if nested is not None else math.inf
        if nested is not None:
            return min(float(child.shutdown), stop_time(nested.children))
        return float(child.shutdown)

    return math.fsum(one(child) for child in children)


def _check_leader(lease: object, children: tuple[ChildSpec, ...]) -> None:
    """``leader=`` takes a lease (``sv.lease.etcd(...)``) whose ttl leaves the
    children time to stop before the lease can be granted elsewhere."""
    ttl = getattr(lease, "ttl", None)
    if not callable(getattr(lease, "election", None)) or not isinstance(ttl, int):
        raise SpecError((), "leader", f"must be a lease such as sv.lease.etcd(...), got {lease!r}")
    problem = leader_problem(stop_time(children), ttl)
    if problem is not None:
        raise SpecError((), "leader", problem)


class Supervisor:
    """A supervisor spec: its children in start order and how it restarts them.

    Settings may be passed to the constructor or set as class attributes by a
    subclass. A subclass may override :meth:`plan` to define its own strategy.

    >>> async def work(ctx): ...
    >>> Supervisor([child("a", work), child("b", work)], strategy="rest_for_one").strategy
    <Strategy.REST_FOR_ONE: 'rest_for_one'>
    """

    strategy: Strategy | str = Strategy.ONE_FOR_ONE
    intensity: int = 3
    period: float = 5.0
    auto_shutdown: AutoShutdown | str = AutoShutdown.NEVER
    backoff: Backoff | None = None
    leader: Lease | None = None

    _FIELDS: ClassVar[tuple[str, ...]] = ("strategy", "intensity", "period", "auto_shutdown", "backoff", "leader")
    children: tuple[ChildSpec, ...]

    def __init__(
        self,
        children: Iterable[ChildSpec] = (),
        *,
        strategy: Strategy | str = _UNSET,
        intensity: int = _UNSET,
        period: float = _UNSET,
        auto_shutdown: AutoShutdown | str = _UNSET,
        backoff: Backoff | None = _UNSET,
        leader: Lease | None = _UNSET,
    ) -> None:
        path: Path = ()
        given = {
            "strategy": strategy,
            "intensity": intensity,
            "period": period,
            "auto_shutdown": auto_shutdown,
            "backoff": backoff,
            "leader": leader,
        }
        values = {k: (getattr(type(self), k) if v is _UNSET else v) for k, v in given.items()}
        values["strategy"] = _enum(Strategy, values["strategy"], path, "strategy")
        values["auto_shutdown"] = _enum(AutoShutdown, values["auto_shutdown"], path, "auto_shutdown")
        _number(values["intensity"], path, "intensity", integer=True)
        values["period"] = float(_number(values["period"], path, "period", infinite=True))
        if values["backoff"] is not None and not isinstance(values["backoff"], Backoff):
            raise SpecError(path, "backoff", f"must be a Backoff or None, got {values['backoff']!r}")
        if isinstance(children, (str, bytes, Mapping)) or not isinstance(children, Iterable):
            raise SpecError(path, "children", f"must be a list of child specs, got {children!r}")
        kids = tuple(children)
        seen: set[str] = set()
        for index, spec in enumerate(kids):
            if not isinstance(spec, ChildSpec):
                raise SpecError(
                    path, f"children[{index}]", f"must be a child spec (sv.child, sv.process), got {spec!r}"
                )
            if spec.id in seen:
                raise SpecError((spec.id,), "id", "duplicate id among siblings")
            seen.add(spec.id)
            if spec.significant and values["auto_shutdown"] is AutoShutdown.NEVER:
                raise SpecError((spec.id,), "significant", "a significant child needs auto_shutdown other than 'never'")
        if values["leader"] is not None:
            _check_leader(values["leader"], kids)
        for key, value in values.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "children", kids)

    def plan(self, ids: tuple[str, ...], failed: str) -> Iterable[str]:
        """Ids of the children to restart, given the children in start order and the
        one that failed. The runtime stops the running ones right to left and starts
        them all left to right; the built-in strategies are three overrides of this
        method (dispatched on ``self.strategy``).
        """
        if self.strategy is Strategy.ONE_FOR_ONE:
            return (failed,)
        if self.strategy is Strategy.ONE_FOR_ALL:
            return ids
        return ids[ids.index(failed) :]

    # -- value semantics -------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The supervisor's own settings (everything but its children)."""
        return {k: getattr(self, k) for k in self._FIELDS}

    def replace(self, **changes: Any) -> Supervisor:
        """A copy with some settings or the children replaced (validated again).

        Attributes a subclass set in its own ``__init__`` are kept."""
        values = self.settings()
        values["children"] = self.children
        values.update(changes)
        children = values.pop("children")
        new = copy.copy(self)
        Supervisor.__init__(new, children, **values)
        return new

    def __setattr__(self, name: str, value: object) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Supervisor):
            return NotImplemented
        # vars() holds the settings, the children and whatever a subclass added
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.settings().items()), self.children))

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        ids = [c.id for c in self.children]
        return f"{type(self).__name__}(children={ids!r}, {settings})"


def descendants(spec: Supervisor, prefix: Path = ()) -> Iterator[tuple[Path, ChildSpec]]:
    """Every child spec declared in a tree, depth first in start order (a nested
    supervisor's children right after it), with its path."""
    for child in spec.children:
        path = (*prefix, child.id)
        yield path, child
        if isinstance(child.start, Supervisor):
            yield from descendants(child.start, path)


@dataclass(frozen=True, slots=True)
class Process:
    """What to run for a process child: built and validated by :func:`supervision.process`
    (in the process layer, which knows the OS's signals and paths).

    ``env`` holds the variables given to ``process()`` as sorted pairs (so the
    value is hashable and compares equal across reloads); ``output`` is
    ``"prefix"``, ``"inherit"``, an absolute file path, a ``LogFile`` or a
    ``Prefixed``; ``settings`` the user, limits, environment files... to apply
    at each start (``_core.settings``).
    """

    argv: tuple[str, ...]
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] | None = None
    inherit_env: bool = True
    stop_signal: int = 15  # SIGTERM
    ready: _ready.Check | None = None
    output: OutputSpec = "prefix"
    pdeathsig: bool = True
    watchdog_signal: int = 6  # SIGABRT
    settings: Settings = NO_SETTINGS

"""Liveness in the core's terms: what a probe result or a missed watchdog means.

Pure: no I/O, no clock (``now`` comes in). The runtime runs the probes and the
watchdog timers and reports; the core keeps one :class:`Health` record per
running child and asks it what follows. A child found unhealthy, or whose
watchdog expired, is *failed*: the runtime stops it (a process gets its
``watchdog_signal`` or its ``stop_signal``, a worker is cancelled) and its exit
is an ordinary crash, with a :class:`HealthCheckFailed` or
:class:`WatchdogTimeout` error, counted against the restart intensity like
any other.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import Path, SupervisionError, format_path
from ._events import Event


class WatchdogTimeout(SupervisionError):
    """A child missed its watchdog deadline (or sent ``WATCHDOG=trigger``).

    ``.path`` names it, ``.period`` is the watchdog period in seconds,
    ``.triggered`` is True when the child asked for it (``WATCHDOG=trigger``).
    It is the ``error`` of the ``ChildExited`` (reason ``"crash"``) that follows.
    """

    def __init__(self, path: Path, period: float, triggered: bool = False) -> None:
        self.path = path
        self.period = period
        self.triggered = triggered
        what = "watchdog triggered by the child" if triggered else f"no heartbeat within {period:g}s"
        super().__init__(f"{format_path(path)}: {what}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.period, self.triggered))


class HealthCheckFailed(SupervisionError):
    """A child failed its health probe ``failures`` times in a row.

    ``.path`` names it, ``.reason`` is the last failure's reason. It is the
    ``error`` of the ``ChildExited`` (reason ``"crash"``) that follows.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{format_path(path)}: unhealthy: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthChanged(Event):
    """A child's health changed: ``healthy`` is True after the first passing
    probe (or the first after failures), False once it failed ``failures``
    probes in a row (then it is restarted). ``reason`` is the probe's."""

    healthy: bool
    reason: str = ""


class Health:
    """The core's record of one incarnation's health (its probe's results)."""

    __slots__ = ("failed", "failures", "healthy")

    def __init__(self) -> None:
        self.healthy: bool | None = None
        """None until the first result that counts; then True or False."""
        self.failures = 0
        """Consecutive failures counted."""
        self.failed = False
        """True once this incarnation was failed (unhealthy or watchdog): later reports are ignored."""

    def probed(
        self, healthy: bool, *, now: float, ready_at: float, grace: float, failures: int
    ) -> tuple[bool | None, bool]:
        """Record one result. Returns ``(changed_to, fail)``: the new health if it
        changed (else None), and whether the child must now be failed.

        A passing probe resets the count. A failing one within ``grace`` seconds
        of readiness is not counted; the ``failures``-th in a row makes the
        child unhealthy."""
        if self.failed:
            return None, False
        if healthy:
            self.failures = 0
            if self.healthy is not True:
                self.healthy = True
                return True, False
            return None, False
        if now < ready_at + grace:
            return None, False
        self.failures += 1
        if self.failures < failures:
            return None, False
        self.failed = True
        changed = self.healthy is not False
        self.healthy = False
        return (False if changed else None), True

    def expired(self) -> bool:
        """The watchdog expired: True if the child must now be failed (once)."""
        if self.failed:
            return False
        self.failed = True
        return True

    def __repr__(self) -> str:
        return f"<Health healthy={self.healthy} failures={self.failures} failed={self.failed}>"

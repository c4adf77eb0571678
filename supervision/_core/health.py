"""Liveness in the core's terms: what a probe result or a missed watchdog means.

Pure: no I/O, no clock (``now`` comes in). The runtime runs the probes and the
watchdog timers and reports; the core keeps one :class:`Health` record per
running child and asks it what follows. A child found unhealthy, or whose
watchdog expired, is *failed*: the runtime stops it (a process gets its
``watchdog_signal`` or its ``stop_signal``, a worker is cancelled) and its exit
is an ordinary crash, with a ``HealthCheckFailed`` or ``WatchdogTimeout``
error (``errors``), counted against the restart intensity like
any other.
"""

from __future__ import annotations


class HealthRecord:
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
        return f"<HealthRecord healthy={self.healthy} failures={self.failures} failed={self.failed}>"

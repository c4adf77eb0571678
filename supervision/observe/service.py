"""What ``sv.run`` adds for observability, in one object: the counters behind
the figures of a status, the HTTP endpoint with its token, and the termination
message on give-up (the log format is ``logs``, set up with logging).

The service layer calls it at five points of a run (see ``_run.Service``):
``Observability(...)`` before anything starts (a bad address or a missing
extra fails there), ``await start(handler, events, control)`` once the control
socket is bound, ``observe(event)`` as each event happens (``Tree._observe``),
``gave_up(error)`` when the root gives up, and ``await close()`` at the end.
The control commands call ``observer.decorate(status)``, so that ``supervision
status``, ``top`` and ``/api/tree`` show the same figures.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from . import termination
from .observer import CommandSource, Handler, Observer
from .tokens import remove_token, token_path, write_token

logger = logging.getLogger("supervision")

_DEFAULT: Any = object()


class Observability:
    """The observability of one ``sv.run``.

    ``http`` is ``"HOST:PORT"`` (``"9464"``: loopback) or None; ``termination_log``
    a path, None (off), or by default ``/dev/termination-log`` when it exists.
    """

    def __init__(
        self,
        now: Callable[[], float],
        *,
        http: str | None = None,
        termination_log: str | None = _DEFAULT,
    ) -> None:
        self.observer = Observer(now)
        self.http = http
        self.termination_log = termination.default_path() if termination_log is _DEFAULT else termination_log
        self.server: Any = None
        self._token: tuple[str, str] | None = None  # (file, token)
        if http is not None:
            from .http import parse_address  # ImportError here: the extra is missing

            parse_address(http)  # ValueError now, not once the tree runs

    @property
    def url(self) -> str | None:
        """The HTTP endpoint's URL, once it listens."""
        return self.server.url if self.server is not None else None

    async def start(self, handler: Handler, events: Callable[[], AsyncIterator[Any]], control: str | None) -> None:
        """Listen on the HTTP address (``OSError`` if taken), with a new token
        beside the control socket ``control`` (without one, the page is read-only)."""
        if self.http is None:
            return
        from .http import HttpServer

        token = None
        if control is not None:
            file = token_path(control)
            token = write_token(file)
            self._token = (file, token)
        server = HttpServer(CommandSource(handler, events), self.http, token=token)
        try:
            await server.start()
        except BaseException:
            self._remove_token()
            raise
        self.server = server
        logger.info("http: %s (metrics, probes, dashboard)", server.url)

    def observe(self, event: Any) -> None:
        """Count an event of the tree; called as the tree emits it (``Tree._observe``),
        so the counters agree with any status taken at the same moment."""
        self.observer.counters.observe(event)

    def gave_up(self, error: BaseException) -> None:
        """The root gave up: write the termination message, if there is a file for it."""
        path = self.termination_log
        if path is None:
            return
        reason = f"{type(error).__name__}: {error}"
        if termination.write(path, reason, self.observer.counters.events):
            logger.info("termination message written to %s", path)
        else:
            logger.warning("could not write the termination message to %s", path)

    async def close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.close()
        self._remove_token()

    def _remove_token(self) -> None:
        if self._token is not None:
            remove_token(*self._token)
            self._token = None


def termination_log_option(value: str | None) -> Any:
    """``--termination-log PATH`` as ``sv.run`` takes it: the default when not
    given, None for ``""``, ``none`` or ``off``, else the absolute path."""
    if value is None:
        return _DEFAULT
    return None if value.lower() in ("", "none", "off") else os.path.abspath(value)

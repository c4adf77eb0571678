"""``sv.run``: the blocking entry point for a program whose job is to run a tree."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from ._errors import StartError, TooManyRestarts
from ._target import Target
from ._tree import Tree, start

logger = logging.getLogger("supervision")

_DEFAULT: Any = object()


def _configure_logging() -> None:
    """INFO to stderr, unless the application configured logging itself."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )


def run(target: Target, *, control: Any = _DEFAULT, name: str | None = None) -> None:
    """Run a tree until it stops: the blocking entry point.

    SIGTERM and SIGINT stop the tree in order; SIGHUP reloads it (for a builder
    or a string target). Logs go to stderr at INFO unless logging is already
    configured. Exits with status 1 when the root gives up or fails to start.

    >>> if __name__ == "__main__":
    ...     sv.run(build)          # or: sv.run("myapp.tree:build")
    """
    _configure_logging()
    try:
        asyncio.run(_main(target))
    except (TooManyRestarts, StartError) as exc:
        logger.error("%s", exc)
        raise SystemExit(1) from None


async def _main(target: Target) -> None:
    tree = await start(target)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []
    reloads: set[asyncio.Task[None]] = set()

    def on_stop(signum: int) -> None:
        logger.info("%s: stopping the tree", signal.Signals(signum).name)
        if not stopping:
            stopping.append(loop.create_task(tree.stop()))

    def on_reload() -> None:
        reload = getattr(tree, "reload", None)
        if reload is None:
            logger.warning("SIGHUP: this tree cannot reload")
            return
        reloads.add(task := loop.create_task(_reload(tree)))
        task.add_done_callback(reloads.discard)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_stop, signum)
    loop.add_signal_handler(signal.SIGHUP, on_reload)
    try:
        await tree.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        await tree.stop()


async def _reload(tree: Tree) -> None:
    try:
        await tree.reload()  # type: ignore[attr-defined]
    except Exception as exc:
        logger.error("reload rejected: %s", exc)

"""The command line's observability parts: the options of ``supervision run``
(``--http``, ``--termination-log``, ``--log-format``), the commands ``top`` and
``dashboard``, and the CPU % and RSS columns of ``supervision status``.

The client commands take a control ``Client`` (anything with ``call(cmd, **fields)``
and ``path``), so this module does not depend on the service layer.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Protocol

from .figures import size
from .tokens import read_token, token_path

LOG_FORMATS = ("auto", "text", "json", "journal")
"""``--log-format`` (``logs.FORMATS``, named here so that ``supervision status``
does not load ``logging`` to build its parser)."""


class Client(Protocol):
    path: str

    def call(self, cmd: str, **fields: Any) -> Any: ...


def add_run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--http",
        metavar="ADDR",
        help="serve /metrics, /healthz, /readyz, /api/tree and the dashboard on HOST:PORT "
        "(a bare port listens on 127.0.0.1); needs supervision[http]",
    )
    run.add_argument(
        "--termination-log",
        metavar="PATH",
        help="where to write why the root gave up (default: /dev/termination-log when it exists; 'none': nowhere)",
    )
    run.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="auto",
        help="the supervisor's log: text, json (one object per line), journal (journald fields); "
        "auto: journal under systemd, else text",
    )


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``sv.run`` for the options of :func:`add_run_options`."""
    from .service import termination_log_option

    return {
        "http": args.http,
        "termination_log": termination_log_option(args.termination_log),
        "log_format": args.log_format,
    }


def add_commands(command: Any) -> None:
    """``command(name, help)`` makes a sub-parser (see ``__main__._parser``)."""
    top = command("top", "a live view of the tree: CPU, memory, restarts, intensity (q quits); needs supervision[top]")
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    command("dashboard", "print the URL of the tree's web dashboard, with the token that lets it act")


def top(client: Client, args: argparse.Namespace) -> int:
    try:
        from .top import run
    except ImportError:
        print("supervision: 'top' needs rich: pip install 'supervision[top]'", file=sys.stderr)
        return 1
    return run(lambda: client.call("status"), interval=max(0.1, args.interval))


def dashboard(client: Client, args: argparse.Namespace) -> int:
    url = client.call("ping").get("http")
    if not url:
        print("supervision: this tree serves no HTTP endpoint (run it with --http ADDR)", file=sys.stderr)
        return 1
    token = read_token(token_path(client.path))
    if token is None:
        print(f"{url}  (read-only: cannot read the token beside {client.path})", file=sys.stderr)
        print(url)
        return 0
    print(f"{url}#token={token}")
    return 0


def figures(node: dict[str, Any]) -> tuple[str, str]:
    """The CPU % and RSS cells of a status row (``-`` when there are none)."""
    used = node.get("resources")
    if not used:
        return "-", "-"
    return f"{used['cpu_percent']:.1f}", size(used["rss_bytes"])

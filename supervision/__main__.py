"""The ``supervision`` command (also ``python -m supervision``).

::

    supervision run TARGET [--name N] [--control PATH | --no-control] [--fresh] [--no-store] [--debug]
                           [--http ADDR] [--termination-log PATH] [--log-format FORMAT]
    supervision status [PATH] [--json]
    supervision top [--interval SECONDS]
    supervision dashboard
    supervision restart PATH... | all
    supervision stop [PATH... | all] [--no-wait]
    supervision start PATH... | all
    supervision signal SIG [PATH...]
    supervision reload [--dry-run]
    supervision logs [PATH] [-n LINES] [-f]
    supervision scale PATH N
    supervision reexec

    supervision check TARGET
    supervision simulate TARGET SCENARIO | -f FILE
    supervision import-supervisord FILE... [-o OUT]

The client commands find the tree's control socket by ``--control PATH``, by
``--name N`` (``$XDG_RUNTIME_DIR/supervision/N.sock``), or, given neither, as the
only socket in that directory. Exit status: 0 done, 1 refused or failed (the
reason on stderr; also a connection lost before the reply), 2 bad usage (also several
trees and no ``--name``), 3 no tree running there. See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._core.errors import ConnectionLost, NotRunning, PathError, RequestError
from ._process.proc import signal_name
from ._service.client import Client, client_path
from ._service.operate import parse_signal, select
from ._tools import Handler, add_parsers
from .observe import cli as observe

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    parser, tools = _parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        return _run(args)
    if args.command in tools:  # no running tree involved
        return tools[args.command](args)
    try:
        path = client_path(args.name, args.control)
        with Client(path) as client:
            return int(COMMANDS[args.command](client, args))
    except NotRunning as exc:
        _error(str(exc))
        return EXIT_NOT_RUNNING
    except (RequestError, PathError) as exc:  # refused: by the server, or the tree's own (NotFound...)
        if isinstance(exc, RequestError) and exc.type == "ReloadError":
            _error(f"reload rejected: {exc}")
        elif isinstance(exc, RequestError) and exc.type == "ReexecRejected":
            _error(f"reexec rejected: {exc}")
        else:
            _error(str(exc))
        return EXIT_FAILED
    except ValueError as exc:  # a bad --name
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except (OSError, json.JSONDecodeError) as exc:
        _error(f"lost the connection: {exc}")
        return EXIT_FAILED


def _parser() -> tuple[argparse.ArgumentParser, dict[str, Handler]]:
    parser = argparse.ArgumentParser(
        prog="supervision",
        description="Run a supervision tree, or control a running one through its control socket.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        # argparse %-formats a help string (not a description): "CPU %" would break --help
        sub = commands.add_parser(name, help=help.replace("%", "%%"), description=help)
        if name == "run":
            sub.add_argument("--name", help="the tree's name (default: the target's module or file name)")
            sub.add_argument("--control", metavar="PATH", help="serve the control socket here")
        else:
            sub.add_argument("--name", help="the tree's name (default: the only tree running)")
            sub.add_argument("--control", metavar="PATH", help="the control socket's path")
        return sub

    run = command("run", "run a tree until it stops (SIGTERM/SIGINT stop it, SIGHUP reloads it)")
    run.add_argument("target", help="pkg.module:build, path/to/file.py[:name], or a services file (.toml)")
    run.add_argument("--no-control", action="store_true", help="serve no control socket")
    run.add_argument(
        "--fresh", action="store_true", help="start without the snapshots saved by earlier runs (and forget them)"
    )
    run.add_argument(
        "--no-store", action="store_true", help="keep snapshots in memory only (default: SQLite beside the socket)"
    )
    run.add_argument(
        "--debug", action="store_true", help="log at DEBUG, with whole tracebacks (a tree that fails to build, say)"
    )
    observe.add_run_options(run)
    status = command("status", "show the tree: path, kind, status, pid, CPU %, RSS, uptime, restarts, last exit")
    status.add_argument("path", nargs="?", help="only this child and what is under it")
    status.add_argument("--json", action="store_true", help="print the status as JSON, for scripts")
    paths = "child paths, or all (every child of the root)"
    command("restart", "stop children (if they run) and start them again").add_argument(
        "paths", nargs="+", metavar="PATH", help=paths
    )
    stop = command("stop", "stop children (they stay stopped), or the whole tree without PATH")
    stop.add_argument("paths", nargs="*", metavar="PATH", help=paths)
    stop.add_argument("--no-wait", action="store_true", help="do not wait until the tree has stopped")
    command("start", "start stopped children again").add_argument("paths", nargs="+", metavar="PATH", help=paths)
    signal = command("signal", "send a signal to process children (to all of them without PATH)")
    signal.add_argument("signal", metavar="SIG", help="a signal name (HUP, USR1, SIGTERM) or number")
    signal.add_argument(
        "paths", nargs="*", metavar="PATH", help="process children, or supervisors (every process under them)"
    )
    reload = command("reload", "reload the tree's source and restart only what changed")
    reload.add_argument("--dry-run", action="store_true", help="print what a reload would do, and do nothing")
    scale = command("scale", "run N instances of PATH (sv.process(..., instances=), numprocs)")
    scale.add_argument("path", metavar="PATH")
    scale.add_argument("count", metavar="N", type=_count, help="new instances start in order, the highest stop first")
    logs = command("logs", "print the recent output lines of a process child, of those under PATH, or of all")
    logs.add_argument("path", nargs="?", help="a child or a supervisor (default: every process child)")
    logs.add_argument("-n", "--lines", type=int, default=100, help="how many lines (default 100)")
    logs.add_argument("-f", "--follow", action="store_true", help="then print new lines as they come, until Ctrl-C")
    command("reexec", "re-execute the supervisor in place (same pid), keeping its OS children running")
    observe.add_commands(command)
    tools = add_parsers(commands)
    return parser, tools


# -- run --------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from ._service.run import run

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # "pkg.module:build" is found in the current directory
    if args.debug:
        import logging

        logging.basicConfig(
            level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    control: Any = None if args.no_control else args.control
    kwargs: dict[str, Any] = {"name": args.name, "fresh": args.fresh, **observe.run_options(args)}
    if args.no_store:
        kwargs["store"] = None
    if control is not None or args.no_control:
        kwargs["control"] = control
    try:
        run(args.target, **kwargs)
    except ValueError as exc:  # a bad --name or --http
        _error(str(exc))
        return EXIT_USAGE
    except ImportError as exc:  # --http without the extra
        _error(f"--http needs supervision[http] ({exc}): pip install 'supervision[http]'")
        return EXIT_USAGE
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_FAILED
    return 0


# -- client commands --------------------------------------------------------------


def _status(client: Client, args: argparse.Namespace) -> int:
    result = client.call("status", **({"path": args.path} if args.path is not None else {}))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_status(result))
    return 0


def _each(client: Client, args: argparse.Namespace, action: str, done: Callable[[dict[str, Any]], str]) -> int:
    """Carry out ``action`` on each path (``all``: every child of the root), one
    request each; a failure is reported and the others go on."""
    names = list(args.paths)
    top: list[str] = []
    if "all" in names:
        top = [child["path"] for child in client.call("status")["children"]]
    failed = False
    for path in select(names, top, action):
        try:
            result = client.call(action, path=path)
        except (RequestError, PathError) as exc:  # said on stderr; the other paths go on
            _error(str(exc))
            failed = True
            continue
        print(f"{result['path']}: {done(result)}")
    return EXIT_FAILED if failed else 0


def _restart(client: Client, args: argparse.Namespace) -> int:
    return _each(client, args, "restart", lambda result: f"restarted{_pid(result)}")


def _stop(client: Client, args: argparse.Namespace) -> int:
    if args.paths:  # [""] too: the server refuses it; only no argument means the tree
        return _each(
            client,
            args,
            "stop",
            lambda result: "stopped" if result["status"] == "terminated" else result["status"],
        )
    client.call("stop")
    if args.no_wait:
        print("stopping")
        return 0
    client.wait_closed()
    print("stopped")
    return 0


def _start(client: Client, args: argparse.Namespace) -> int:
    return _each(client, args, "start", lambda result: f"started{_pid(result)}")


def _signal(client: Client, args: argparse.Namespace) -> int:
    try:
        parse_signal(args.signal)
    except ValueError as exc:
        _error(str(exc))
        return EXIT_USAGE
    paths = [path for path in args.paths if path != "all"] if "all" not in args.paths else []
    failed = False
    for path in paths or [None]:
        try:
            result = client.call("signal", signal=args.signal, **({"path": path} if path else {}))
        except (RequestError, PathError) as exc:
            _error(str(exc))
            failed = True
            continue
        for sent in result["signalled"]:
            print(f"{sent['path']}: {result['signal']} sent (pid {sent['pid']})")
    return EXIT_FAILED if failed else 0


def _reload(client: Client, args: argparse.Namespace) -> int:
    if args.dry_run:
        from ._core.plan import format_plan

        print(format_plan(client.call("reload", dry_run=True)))
        return 0
    result = client.call("reload")
    changes = [f"  {field}: {', '.join(paths)}" for field, paths in result.items() if paths]
    print("reloaded:" if changes else "reloaded: nothing changed")
    for line in changes:
        print(line)
    return 0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return value


def _scale(client: Client, args: argparse.Namespace) -> int:
    result = client.call("scale", path=args.path, count=args.count)
    print(f"{result['path']}: {result['count']} instances")
    return 0


def _logs(client: Client, args: argparse.Namespace) -> int:
    result = client.call("logs", path=args.path, lines=args.lines)
    _print_lines(result["path"], result["lines"])
    if args.follow:
        _follow(client, args, result)
    return 0


FOLLOW_INTERVAL = 0.25
"""Seconds between two requests of ``logs -f`` (``tail -f`` waits a second)."""
RECONNECT_FOR = 10.0
"""Seconds ``logs -f`` tries to reconnect after losing the tree (a re-exec takes one)."""


def _print_lines(path: str, lines: list[dict[str, Any]]) -> None:
    """A child's own lines as they are; those of several children prefixed with their path."""
    single = bool(path) and all(line["path"] == path for line in lines)
    for line in lines:
        print(line["text"] if single else f"{line['path']} | {line['text']}")
    sys.stdout.flush()


def _follow(client: Client, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """``logs -f``: ask for the lines that follow, again and again, until Ctrl-C.
    After a re-exec (a new epoch: lines numbered afresh) only lines newer than
    the last one shown are printed."""
    import time

    after: int | None = result["seq"]
    epoch = result["epoch"]
    shown = max((line["time"] for line in result["lines"]), default=time.time())
    owned: Client | None = None
    try:
        while True:
            time.sleep(FOLLOW_INTERVAL)
            try:
                result = client.call("logs", path=args.path, lines=10_000, after=after or 0)
            except (ConnectionLost, OSError):
                if owned is not None:
                    owned.close()
                client = owned = _reconnect(args)
                after = None
                continue
            lines = result["lines"]
            if result["epoch"] != epoch or after is None:
                lines = [line for line in lines if line["time"] > shown]
                epoch = result["epoch"]
            after = result["seq"]
            if lines:
                shown = max(shown, lines[-1]["time"])
                _print_lines(result["path"], lines)
    finally:
        if owned is not None:
            owned.close()


def _reconnect(args: argparse.Namespace) -> Client:
    import time

    deadline = time.monotonic() + RECONNECT_FOR
    while True:
        try:
            return Client(client_path(args.name, args.control))
        except NotRunning:
            if time.monotonic() > deadline:
                raise
            time.sleep(FOLLOW_INTERVAL)


def _reexec(client: Client, args: argparse.Namespace) -> int:
    result = client.call("reexec")
    adopted = len(result["adopted"])
    print(f"re-executed: pid {result['pid']}, {adopted} OS process(es) kept, in {result['handover_ms']:.0f} ms")
    for field, what in (
        ("lost", "lost during the handover (restart rules apply)"),
        ("replaced", "restarted with the spec on disk"),
        ("stopped", "stopped (no longer declared, dynamic, or terminated)"),
    ):
        if result.get(field):
            print(f"  {what}: {', '.join(result[field])}")
    return 0


COMMANDS = {
    "status": _status,
    "restart": _restart,
    "stop": _stop,
    "start": _start,
    "reload": _reload,
    "logs": _logs,
    "reexec": _reexec,
    "top": observe.top,
    "dashboard": observe.dashboard,
    "signal": _signal,
    "scale": _scale,
}


# -- formatting -------------------------------------------------------------------


def _any_health(nodes: list[dict[str, Any]]) -> bool:
    return any(node.get("health") is not None or _any_health(node.get("children", [])) for node in nodes)


def format_status(status: dict[str, Any]) -> str:
    """The human view of a ``status`` result: a header, then one row per child,
    indented by depth."""
    header = f"{status['name']}: {status['state']}, pid {status['pid']}, up {duration(status['uptime'])}"
    # A HEALTH column only for a tree with health probes (see docs/health.md).
    probed = _any_health(status["children"])
    rows = [
        (
            "PATH",
            "KIND",
            "STATUS",
            *(("HEALTH",) if probed else ()),
            "PID",
            "CPU%",
            "RSS",
            "UPTIME",
            "RESTARTS",
            "LAST EXIT",
        )
    ]

    def add(node: dict[str, Any], depth: int) -> None:
        cpu, rss = observe.figures(node)
        rows.append(
            (
                "  " * depth + node["path"],
                node["kind"],
                f"{node['status']} ({_role(node)})" if node.get("role") else node["status"],
                *((node.get("health") or "-",) if probed else ()),
                str(node["pid"]) if node["pid"] is not None else "-",
                cpu,
                rss,
                duration(node["uptime"]) if node["uptime"] is not None else "-",
                str(node["restarts"]),
                last_exit(node["last_exit"]),
            )
        )
        for child in node.get("children", ()):
            add(child, depth + 1)

    for node in status["children"]:
        add(node, 0)
    if len(rows) == 1:
        return f"{header}\n(no children)"
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    ]
    return "\n".join([header, *(line.rstrip() for line in lines)])


def _role(node: dict[str, Any]) -> str:
    """A leader-gated supervisor's role: ``leader, fence 42`` or ``standby``."""
    return f"leader, fence {node['fence']}" if node["role"] == "leader" else str(node["role"])


def last_exit(found: dict[str, Any] | None) -> str:
    if not found:
        return "-"
    text = found["reason"]
    if found.get("exit_status") is not None:
        text += f" (status {found['exit_status']})"
    elif found.get("signal") is not None:
        text += f" ({signal_name(found['signal'])})"
    elif found.get("error"):
        error = str(found["error"])
        text += f" ({error[:57] + '...' if len(error) > 60 else error})"
    return f"{text}, {duration(found['ago'])} ago"


def duration(seconds: float) -> str:
    """``4.2s``, ``5m12s``, ``2h03m``, ``3d04h``."""
    if round(seconds, 1) < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def _pid(result: dict[str, Any]) -> str:
    return f" (pid {result['pid']})" if result.get("pid") is not None else ""


def _error(message: str) -> None:
    print(f"supervision: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

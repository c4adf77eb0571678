"""The commands that need no running tree: ``check``, ``simulate`` and ``import-supervisord``.

Each is a function of the parsed arguments that prints its result and returns
the exit status: 0 done, 1 the input is invalid (the reason on stderr, with
its file and line), 2 bad usage (a scenario that cannot be read: its line and
column). :func:`add_parsers` adds their sub-commands to the ``supervision``
parser. See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO

EXIT_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def add_parsers(commands: Any) -> dict[str, Handler]:
    """Add ``check``, ``simulate`` and ``import-supervisord`` to the sub-parsers
    ``commands``; the handler of each, by name."""
    check = commands.add_parser(
        "check",
        help="validate a tree file or services file and print the tree it would run, starting nothing",
        description="Build the tree TARGET names, as `run` would, without starting anything, and print it. "
        "Exit status 1 on any error, with the file and line.",
    )
    check.add_argument("target", help="pkg.module:build, path/to/file.py[:name], or a services file (.toml)")

    simulate = commands.add_parser(
        "simulate",
        help="what happens if...: run a scenario against a tree on a virtual clock, starting nothing",
        description="Run SCENARIO (e.g. 'crash db x3 within 10s; wait 30s; crash cache') against the tree "
        "TARGET names, in the reference simulator: who restarts, when the restart windows fill, which "
        "supervisor gives up, whether the root exits. Nothing is started and no time passes.",
    )
    simulate.add_argument("target", help="pkg.module:build, path/to/file.py[:name], or a services file (.toml)")
    simulate.add_argument("scenario", nargs="?", help="the statements, separated by ';' (see docs/cli.md)")
    simulate.add_argument("-f", "--file", metavar="FILE", help="read the scenario from FILE ('-': stdin)")
    simulate.add_argument("--no-windows", action="store_true", help="do not show the restart windows")

    convert = commands.add_parser(
        "import-supervisord",
        help="convert supervisord .conf files into a services file",
        description="Convert supervisord configuration files (following their [include]) into a services "
        "file (TOML), written to stdout or --output. What cannot be converted is listed on stderr, "
        "each with the file and line it came from.",
    )
    convert.add_argument("files", nargs="+", metavar="FILE", help="supervisord.conf, conf.d/*.conf ...")
    convert.add_argument("-o", "--output", metavar="FILE", help="write the services file here (not stdout)")
    convert.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    return {"check": check_command, "simulate": simulate_command, "import-supervisord": import_command}


def check_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from ._core.errors import CheckError
    from ._service.check import count, format_tree, load

    out = out or sys.stdout
    _on_path()
    try:
        spec = load(args.target)
    except CheckError as exc:
        _error(f"check failed: {exc}")
        return EXIT_FAILED
    counts = count(spec)
    plural = {"worker": "workers", "process": "processes", "supervisor": "supervisors"}
    summary = ", ".join(f"{n} {kind if n == 1 else plural[kind]}" for kind, n in counts.items() if n)
    print(f"{args.target}: valid ({summary or 'no children'}); nothing was started", file=out)
    print(format_tree(spec), file=out)
    return 0


def simulate_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from ._core.errors import CheckError, ScenarioError
    from ._service.check import load
    from .testing._scenario import format_timeline, parse, run

    out = out or sys.stdout
    if (args.scenario is None) == (args.file is None):
        _error("simulate needs a SCENARIO or --file FILE (one of them)")
        return EXIT_USAGE
    if args.file is not None:
        try:
            text = sys.stdin.read() if args.file == "-" else _read(args.file)
        except OSError as exc:
            _error(f"cannot read {args.file}: {exc.strerror or exc}")
            return EXIT_USAGE
        source = args.file
    else:
        text, source = args.scenario, "scenario"
    _on_path()
    try:
        spec = load(args.target)
    except CheckError as exc:
        _error(f"cannot simulate: {exc}")
        return EXIT_FAILED
    try:
        statements = parse(text, spec)
    except ScenarioError as exc:
        _error(f"{source}:{exc}\n{exc.excerpt()}")
        return EXIT_USAGE
    print(f"simulating {args.target} on a virtual clock (nothing is started):", file=out)
    print(format_timeline(run(spec, statements), windows=not args.no_windows), file=out)
    return 0


def import_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from ._core.errors import ServicesError, SupervisordError
    from ._reload.services import parse
    from ._reload.supervisord import convert

    out = out or sys.stdout
    if args.output and os.path.exists(args.output) and not args.force:
        _error(f"{args.output} exists; --force to overwrite it")
        return EXIT_FAILED
    try:
        conversion = convert(args.files)
    except SupervisordError as exc:
        _error(str(exc))
        return EXIT_FAILED
    text = conversion.toml(relative_to=os.getcwd())
    destination = os.path.dirname(os.path.abspath(args.output)) if args.output else os.getcwd()
    try:
        parse(text, args.output or "<converted>", destination)
    except ServicesError as exc:  # a converter bug: say so rather than write a file `run` rejects
        _error(f"the converted services file is invalid (please report this): {exc}")
        return EXIT_FAILED
    if args.output:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    else:
        out.write(text)
    for note in conversion.left_out:
        where = note.where
        shown = os.path.relpath(where.file) if os.path.isabs(where.file) else where.file
        print(f"not converted: {shown}:{where.line}: {str(note).partition(': ')[2]}", file=sys.stderr)
    services = len(conversion.services)
    told = f"wrote {args.output}: " if args.output else ""
    print(
        f"{told}{services} service{'s' if services != 1 else ''}, {len(conversion.left_out)} option(s) not converted",
        file=sys.stderr,
    )
    return 0


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read()


def _on_path() -> None:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # "pkg.module:build" is found in the current directory


def _error(message: str) -> None:
    print(f"supervision: {message}", file=sys.stderr)

"""Every code block of the docs and the README runs in the test suite, or says why not.

The blocks are found in README.md and docs/**/*.md. A fence's first line may carry
markers, ``key="value"`` pairs after the language (docs/hooks.py strips them from the
site):

- ```` ```python ````: run with pytest-examples, as a script (``__name__ == "__main__"``).
  A ``build()`` it defines is called and must return a ``Supervisor``; every
  ``test_*`` function it defines is called, as pytest would.
- ``context="page"``: the block continues the runnable blocks above it on its page
  and runs with their names. ``context="examples/NAME.py"``: the block is an excerpt
  of that example and runs with its names.
- ``test="output"`` on a ``text`` block: what the runnable Python block just above it
  prints (compared as doctest does, with ``...`` and whitespace normalised).
- ``test="services"`` on a ``toml`` block: a services file; it must build a tree.
- ``test="daemon"`` on a Python block: a program that runs a tree until it is stopped
  (``sv.run``). It runs in a subprocess until its tree has started, then gets SIGTERM
  and must stop the tree in order and exit 0. With ``context="page"`` the runnable
  blocks above it come first in the program.
- ``test="session"`` on a ``text`` block: a shell session; each ``$ command`` runs from
  the repository's root and must print what the block shows under it.
- ``test="ci"`` on a shell block: the command .ci/run runs, verbatim.
- ``test="tutorial"``: docs/tutorial.md, run for real by ``test_tutorial`` below: the
  files the page writes (blocks with a ``title="FILE"``) and its shell sessions.
- ``test="skip" reason="..."``: not run, and the reason says why (a daemon, a shell
  session on someone's machine, a config file for another program). A skipped Python
  block must still compile.

Docstrings are documentation too (the API reference renders them): every public name of
``supervision`` and ``supervision.testing`` has one with a ``>>>`` example, and every
``>>>`` example in the package runs as a doctest (``# doctest: +SKIP`` marks a fragment
that cannot).

``text`` and ``mermaid`` blocks are not code (output, diagrams, signatures) and need no
marker, unless they show a shell session (``$ `` prompts) or Python code; any other
block without a marker fails ``test_every_block_is_run_or_marked``.
"""

from __future__ import annotations

import ast
import asyncio
import doctest
import importlib
import inspect
import io
import os
import re
import runpy
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pytest_examples import CodeExample, EvalExample

import supervision as sv

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]

FENCE = re.compile(
    r"^(?P<indent> *)(?P<fence>`{3,})(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)(?P=fence) *$", re.M | re.S
)
SETTING = re.compile(r'([\w-]+)="([^"]*)"')
NOT_CODE = {"text", "mermaid"}
FILE_NAMED = re.compile(r"\b(?:tests|examples|bench|docs)/[\w/.-]+\.(?:py|md)\b")  # in a reason: it must exist
PYTHON_LINE = re.compile(r"^(import |from \w+ import |def |async def )", re.M)
KNOWN_SETTINGS = {"test", "reason", "context", "title", "hl_lines", "linenums"}  # the last three: the theme
MARKERS = {"skip", "output", "services", "ci", "tutorial", "daemon", "session"}


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    settings: dict[str, str]
    source: str
    indent: int
    runs_before: list[Block] = field(default_factory=list)  # the runnable blocks above it on its page

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def test(self) -> str | None:
        return self.settings.get("test")

    @property
    def runnable(self) -> bool:
        return self.lang == "python" and self.test is None

    def example(self) -> CodeExample:
        return CodeExample.create(
            self.source, path=self.path, start_line=self.line, prefix=self.lang, indent=self.indent
        )


def read_blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    blocks: list[Block] = []
    for match in FENCE.finditer(text):
        info = match["info"].strip()
        lang = info.split()[0] if info else ""
        indent = len(match["indent"])
        source = "\n".join(line[indent:] for line in match["body"].splitlines()) + "\n"
        line = text.count("\n", 0, match.start()) + 1
        block = Block(path, line, lang, dict(SETTING.findall(info)), source, indent)
        block.runs_before = [b for b in blocks if b.runnable]
        blocks.append(block)
    return blocks


ALL_BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def blocks_where(condition: Any) -> list[Any]:
    return [pytest.param(block, id=str(block)) for block in ALL_BLOCKS if condition(block)]


def test_every_block_is_run_or_marked() -> None:
    problems = []
    for block in ALL_BLOCKS:
        unknown = set(block.settings) - KNOWN_SETTINGS
        if unknown:
            problems.append(f"{block}: unknown marker(s) {sorted(unknown)}")
        if not block.lang:
            problems.append(f"{block}: a fence without a language")
        elif block.test is not None and block.test not in MARKERS:
            problems.append(f'{block}: test="{block.test}" is not one of {sorted(MARKERS)}')
        elif block.test == "skip" and not block.settings.get("reason", "").strip():
            problems.append(f'{block}: test="skip" needs a reason="..."')
        elif any(not (ROOT / path).exists() for path in FILE_NAMED.findall(block.settings.get("reason", ""))):
            problems.append(f"{block}: its reason names a file that does not exist: {block.settings['reason']}")
        elif block.lang not in NOT_CODE | {"python"} and block.test is None:
            problems.append(f'{block}: a {block.lang} block must be run or marked (test="skip" reason="...")')
        elif block.lang == "text" and block.test is None and PYTHON_LINE.search(block.source):
            problems.append(f"{block}: Python code in a text block: fence it as python")
        elif block.lang == "text" and block.test is None and re.search(r"^\$ ", block.source, re.M):
            problems.append(f'{block}: a shell session: run it (test="session") or mark it (test="skip" reason="...")')
    assert not problems, "\n".join(problems)
    assert sum(block.runnable for block in ALL_BLOCKS) >= 30  # the parser found the blocks


@pytest.fixture
def main_module() -> Iterator[None]:
    """pytest-examples runs a block as ``__main__``: put the real one back afterwards."""
    saved = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = saved


def run_block(block: Block, eval_example: EvalExample) -> dict[str, Any]:
    """Run one block as pytest-examples does, with the names its context gives it."""
    context = block.settings.get("context")
    names: dict[str, Any] = {}
    if context == "page":
        for before in block.runs_before:
            if before.settings.get("context") is None:
                names.update(eval_example.run(before.example(), module_globals=dict(names)))
    elif context is not None:
        example = runpy.run_path(str(ROOT / context), run_name="docs_context")
        names.update((name, value) for name, value in example.items() if not name.startswith("__"))
    try:
        return eval_example.run(block.example(), module_globals=names)
    except Exception as error:  # pytest-examples' rewritten traceback breaks pytest's report on 3.11
        raise AssertionError(f"{block}: {type(error).__name__}: {error}") from None


@pytest.mark.usefixtures("main_module")
@pytest.mark.parametrize("block", blocks_where(lambda b: b.runnable))
def test_python_block_runs(block: Block, eval_example: EvalExample) -> None:
    names = run_block(block, eval_example)
    defined = set(re.findall(r"^(?:async )?def (\w+)", block.source, re.M))
    build = names.get("build")
    if "build" in defined and not inspect.signature(build).parameters:
        assert isinstance(build(), sv.Supervisor), f"{block}: build() must return a Supervisor"
    for name in sorted(defined):
        if name.startswith("test_"):
            result = names[name]()
            if inspect.iscoroutine(result):
                asyncio.run(result)


@pytest.mark.usefixtures("main_module")
@pytest.mark.parametrize("block", blocks_where(lambda b: b.test == "output"))
def test_output_block_is_what_the_code_prints(block: Block, eval_example: EvalExample) -> None:
    assert block.runs_before, f"{block}: no Python block above it"
    code = block.runs_before[-1]
    out = io.StringIO()
    with redirect_stdout(out):
        run_block(code, eval_example)
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    assert checker.check_output(block.source, out.getvalue(), flags), (
        f"{block}: the block above ({code}) prints\n{out.getvalue()}"
    )


def venv_env(**extra: str) -> dict[str, str]:
    """The environment of a user of this checkout: its Python first on PATH."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


@pytest.mark.timeout(90)
@pytest.mark.parametrize("block", blocks_where(lambda b: b.test == "daemon"))
def test_daemon_block_runs_until_sigterm(block: Block, tmp_path: Path) -> None:
    page = block.settings.get("context") == "page"
    parts = [b.source for b in block.runs_before if b.settings.get("context") is None] if page else []
    program = tmp_path / "program.py"
    program.write_text("\n".join([*parts, block.source]))
    (tmp_path / "runtime").mkdir()
    log = tmp_path / "log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [sys.executable, str(program)],
            cwd=tmp_path,
            env=venv_env(XDG_RUNTIME_DIR=str(tmp_path / "runtime")),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        # sv.run logs "control socket: ..." once the tree has started.
        wait_for_lines(log, "...control socket: ...", daemon)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0, log.read_text()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
    assert "SupervisorStopped" in log.read_text()


@pytest.mark.parametrize("block", blocks_where(lambda b: b.test == "session"))
def test_session_block_prints_what_it_shows(block: Block) -> None:
    checker = doctest.OutputChecker()
    for command in parse_session(block):
        done = subprocess.run(
            command.line, shell=True, cwd=ROOT, env=venv_env(), capture_output=True, text=True, timeout=50
        )
        assert done.returncode == 0, f"{block}: $ {command.line}\n{done.stdout}{done.stderr}"
        assert checker.check_output(command.expected, done.stdout, doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE), (
            f"{block}: $ {command.line} prints\n{done.stdout}"
        )


@pytest.mark.parametrize("block", blocks_where(lambda b: b.lang == "python" and b.test == "skip"))
def test_skipped_python_block_compiles(block: Block) -> None:
    compile(block.source, str(block), "exec", flags=0x2000)  # PyCF_ALLOW_TOP_LEVEL_AWAIT: fragments of async code


@pytest.mark.parametrize("block", blocks_where(lambda b: b.test == "services"))
async def test_services_file_builds_a_tree(block: Block, tmp_path: Path) -> None:
    tomllib.loads(block.source)
    path = tmp_path / "services.toml"
    path.write_text(block.source)
    # The programs of a doc's example do not exist here, so the tree cannot start; but
    # the file must build a valid tree first (an invalid one raises SpecError instead).
    with pytest.raises(sv.StartError) as failed:
        async with sv.start(str(path)):
            pass
    assert isinstance(failed.value.__cause__, OSError), failed.value.__cause__


@pytest.mark.parametrize("block", blocks_where(lambda b: b.test == "ci"))
def test_ci_runs_the_documented_command(block: Block) -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    for command in block.source.strip().splitlines():
        assert command in ci, f"{block}: .ci/run does not run {command!r}"


def test_reference_lists_every_public_name() -> None:
    """The same check as docs/hooks.py makes in the site's build, without building."""
    sys.path.insert(0, str(DOCS))
    try:
        import hooks  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(DOCS))
    documented = hooks.documented_names(DOCS)
    for module, names in hooks.public_names().items():
        assert set(names) <= documented[module], f"missing from docs/{hooks.REFERENCE[module]}"
        assert documented[module] - set(names) <= {"model", "strategies"}


# -- the tutorial ------------------------------------------------------------------


@dataclass
class Command:
    line: str  # as typed, after "$ "
    expected: str  # the output shown under it
    block: Block


def parse_session(block: Block) -> list[Command]:
    """``$ command`` lines, each with the output shown under it."""
    commands: list[Command] = []
    for line in block.source.splitlines():
        if line.startswith("$ "):
            commands.append(Command(line[2:], "", block))
        elif commands:
            commands[-1].expected += line + "\n"
    return commands


def tutorial_steps() -> list[Block | Command]:
    """The page in order: the files it writes (``title="FILE"``), the commands it runs,
    and what the tree it runs prints meanwhile."""
    steps: list[Block | Command] = []
    for block in read_blocks(DOCS / "tutorial.md"):
        if block.test == "tutorial":
            # A file it writes, commands with their output, or more output of the run.
            steps.extend(parse_session(block) or [block])
    return steps


@pytest.mark.timeout(120)
def test_tutorial(tmp_path: Path) -> None:
    """docs/tutorial.md, from an empty directory: its files written, its commands run.

    ``supervision run`` runs in the background (the page's first terminal) until
    ``supervision stop``; what the page shows of its output must appear in it. Every
    other command must exit 0 and print what the page shows (doctest's ``...`` and
    whitespace rules). A command whose output shows a state the tree reaches by itself
    (a restart) is tried again until it does, for at most 20 seconds.
    """
    steps = tutorial_steps()
    assert any(isinstance(s, Block) for s in steps) and any(isinstance(s, Command) for s in steps)
    env = venv_env(XDG_RUNTIME_DIR=str(tmp_path / "runtime"))
    (tmp_path / "runtime").mkdir()
    work = tmp_path / "hello"
    work.mkdir()
    run: subprocess.Popen[bytes] | None = None
    log = tmp_path / "run.log"
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    try:
        for step in steps:
            if isinstance(step, Block) and "title" in step.settings:
                (work / step.settings["title"]).write_text(step.source)
                continue
            if isinstance(step, Block):
                assert run is not None, f"{step}: output of a tree that is not running"
                wait_for_lines(log, step.source, run)
                continue
            argv = shlex.split(step.line)
            if argv[:2] == ["supervision", "run"]:
                assert run is None
                with log.open("wb") as out:
                    run = subprocess.Popen(argv, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
                wait_for_lines(log, step.expected, run)
                continue
            deadline = time.monotonic() + 20
            while True:
                done = subprocess.run(
                    step.line, shell=True, cwd=work, env=env, capture_output=True, text=True, timeout=30
                )
                ok = done.returncode == 0 and checker.check_output(step.expected, done.stdout, flags)
                if ok or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert ok, (
                f"{step.block}: $ {step.line}\nexit {done.returncode}\n{done.stdout}{done.stderr}\n{log.read_text()}"
            )
        assert run is not None
        assert run.wait(timeout=30) == 0, log.read_text()
    finally:
        if run is not None and run.poll() is None:
            run.send_signal(signal.SIGKILL)
            run.wait()
    output = log.read_text()
    counts = [int(n) for n in re.findall(r"^counter: (\d+)$", output, re.M)]
    after_reload = [int(n) for n in re.findall(r"^the count is (\d+)$", output, re.M)]
    assert counts and after_reload, output
    assert after_reload[0] > counts[-1] - 1, "the reloaded counter starts from its snapshot, not from 1"


def wait_for_lines(log: Path, expected: str, run: subprocess.Popen[bytes]) -> None:
    """Until every line the page shows for the run has appeared in its output."""
    wanted = [line for line in expected.splitlines() if line.strip()]
    checker = doctest.OutputChecker()
    deadline = time.monotonic() + 20
    while True:
        lines = log.read_text().splitlines()
        missing = [
            w for w in wanted if not any(checker.check_output(w + "\n", got + "\n", doctest.ELLIPSIS) for got in lines)
        ]
        if not missing:
            return
        assert run.poll() is None and time.monotonic() < deadline, f"never printed: {missing}\n{log.read_text()}"
        time.sleep(0.2)


# -- docstrings: every public name has an example, and every example runs -------------


@dataclass
class Docstring:
    module: str  # dotted name of the module it is in
    name: str  # what it documents, dotted, within its module
    line: int
    text: str

    def __str__(self) -> str:
        return f"{self.module}.{self.name}" if self.name else self.module


def docstrings_in(node: ast.AST, module: str, prefix: str = "") -> Iterator[Docstring]:
    body = getattr(node, "body", [])
    for i, child in enumerate(body):
        if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{child.name}"
            doc = ast.get_docstring(child)
            if doc:
                yield Docstring(module, name, child.body[0].lineno, doc)
            yield from docstrings_in(child, module, name + ".")
        elif isinstance(child, (ast.Assign, ast.AnnAssign)) and i + 1 < len(body):
            target = child.targets[0] if isinstance(child, ast.Assign) else child.target
            after = body[i + 1]
            if (
                isinstance(target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                yield Docstring(module, f"{prefix}{target.id}", after.lineno, inspect.cleandoc(after.value.value))


def package_docstrings() -> list[Docstring]:
    """Every docstring in the package: modules, classes, functions, methods, and the
    strings under attributes (which the API reference shows as their docstrings)."""
    found = []
    for path in sorted((ROOT / "supervision").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree)
        if doc:
            found.append(Docstring(module, "", 1, doc))
        found.extend(docstrings_in(tree, module))
    return found


DOCSTRINGS = package_docstrings()


def public_objects() -> Iterator[tuple[str, Any]]:
    import supervision.testing

    for module in (sv, supervision.testing):
        for name in module.__all__:
            yield f"{module.__name__}.{name}", getattr(module, name)


def test_every_public_name_has_a_docstring_with_an_example() -> None:
    by_name: dict[str, list[str]] = {}
    for doc in DOCSTRINGS:
        by_name.setdefault(doc.name.rpartition(".")[2] or doc.module.rpartition(".")[2], []).append(doc.text)
    missing = []
    for full, obj in public_objects():
        if inspect.isclass(obj) or inspect.isfunction(obj) or inspect.ismodule(obj):
            text = obj.__doc__ or ""
        else:  # a constant or an alias: the string under its assignment
            text = "\n".join(by_name.get(full.rpartition(".")[2], []))
        if ">>>" not in text:
            missing.append(full)
    assert not missing, f"public names without a docstring example: {missing}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("doc", [pytest.param(d, id=str(d)) for d in DOCSTRINGS if ">>>" in d.text])
def test_docstring_example_runs(doc: Docstring) -> None:
    """Doctest, with the names of the module the docstring is in (as ``help()`` reads it)."""
    globs = dict(vars(importlib.import_module(doc.module)))
    test = doctest.DocTestParser().get_doctest(doc.text, globs, str(doc), doc.module, doc.line)
    out = io.StringIO()
    results = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS).run(test, out=out.write, clear_globs=True)
    assert not results.failed, out.getvalue()

"""Fingerprints, beyond tests/core/test_diff.py: docstrings added or removed are not a
change, and functions reached in other modules of the tree's own code are followed."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import supervision as sv
from supervision._core.fingerprint import Fingerprints
from tests.core.test_diff import load
from tests.reload.test_reload import Package

# -- docstrings --------------------------------------------------------------------------

WITHOUT = """
    import asyncio

    async def worker(ctx):
        value = None
        if ctx is None:
            return None
        await asyncio.sleep(0)
        return "done"

    def plain(x):
        return x

    def returns_none():
        pass

    square = lambda x: x * x
"""

WITH = """
    import asyncio

    async def worker(ctx):
        '''Wait, then say so.'''
        value = None
        if ctx is None:
            return None
        await asyncio.sleep(0)
        return "done"

    def plain(x):
        '''The identity.'''
        return x

    def returns_none():
        '''Nothing.'''

    square = lambda x: x * x
"""


@pytest.mark.parametrize("name", ["worker", "plain", "returns_none"])
def test_adding_or_removing_a_docstring_is_not_a_change(name: str) -> None:
    without, with_ = load(WITHOUT), load(WITH)
    assert getattr(without, name).__doc__ is None and getattr(with_, name).__doc__
    assert Fingerprints().same(getattr(without, name), getattr(with_, name))
    assert Fingerprints().same(getattr(with_, name), getattr(without, name))


def test_a_docstring_does_not_hide_a_change_of_the_body() -> None:
    edited = load(WITH.replace('return "done"', 'return "finished"'))
    assert not Fingerprints().same(load(WITHOUT).worker, edited.worker)
    assert not Fingerprints().same(load(WITH).worker, edited.worker)


def test_a_string_that_is_not_the_docstring_counts() -> None:
    # The first statement is not a string: the string below is no docstring, and
    # one read as a value is part of what the function does.
    source = """
        def first():
            x = 1
            "only an expression"
            return x

        def reads():
            x = "a value"
            return x
    """
    assert load(source).first.__doc__ is None
    assert Fingerprints().same(load(source).first, load(source.replace("only an", "another")).first)
    assert not Fingerprints().same(load(source).reads, load(source.replace("a value", "another")).reads)
    # A string equal to the docstring, used as a value, is still compared.
    same_text = """
        def f():
            '''text'''
            return "text"
    """
    assert not Fingerprints().same(load(same_text).f, load(same_text.replace('return "text"', 'return "other"')).f)


def test_a_lambda_and_a_nested_function_with_a_docstring() -> None:
    assert Fingerprints().same(load(WITHOUT).square, load(WITH).square)
    source = """
        def make():
            async def inner(ctx):
                return None
            return inner
    """
    documented = source.replace("async def inner(ctx):", "async def inner(ctx):\n                '''Inner.'''")
    assert Fingerprints().same(load(source).make(), load(documented).make())
    assert Fingerprints().same(load(source).make, load(documented).make)


# -- code in other modules of the tree's own package (real files, real reloads) --------------

HELPERS = """
    from .deep import inner

    def parse(text):
        return "parsed " + text

    def outer(text):
        return inner(text) + "!"
"""

DEEP = """
    def inner(text):
        return "inner " + text
"""

MODELS = """
    class Parser:
        def parse(self, text):
            return "model " + text
"""

WORKERS = """
    import asyncio
    import json
    from pyrsistent import pmap
    from . import helpers
    from .helpers import outer, parse
    from .models import Parser

    async def uses_helper(ctx):
        ctx.save(pmap({"v": parse("x")}))
        await asyncio.Event().wait()

    async def uses_helper_of_helper(ctx):
        ctx.save(pmap({"v": outer("x")}))
        await asyncio.Event().wait()

    async def uses_method(ctx):
        ctx.save(pmap({"v": Parser().parse("x")}))
        await asyncio.Event().wait()

    async def uses_module_attribute(ctx):
        ctx.save(pmap({"v": helpers.parse("y")}))
        await asyncio.Event().wait()

    async def uses_the_stdlib(ctx):
        ctx.save(pmap({"v": json.dumps("x")}))
        await asyncio.Event().wait()
"""

FOLLOW_TREE = """
    import supervision as sv
    from . import workers

    def build():
        return sv.Supervisor([
            sv.child(name, getattr(workers, name))
            for name in ("uses_helper", "uses_helper_of_helper", "uses_method",
                         "uses_module_attribute", "uses_the_stdlib")
        ])
"""


@pytest.fixture
def package(tmp_path: Path) -> Iterator[Package]:
    sys.path.insert(0, str(tmp_path))
    package = Package(tmp_path)
    try:
        yield package
    finally:
        sys.path.remove(str(tmp_path))
        for name in package.modules():
            del sys.modules[name]


def values(tree: sv.Tree) -> dict[str, Any]:
    return {c.id: tree.state(c.id).get("v") for c in tree.which_children()}


@pytest.mark.parametrize(
    ("module", "old", "new", "restarted", "value"),
    [
        ("helpers", '"parsed "', '"PARSED "', ["uses_helper", "uses_module_attribute"], "PARSED x"),
        ("deep", '"inner "', '"INNER "', ["uses_helper_of_helper"], "INNER x!"),
        ("models", '"model "', '"MODEL "', ["uses_method"], "MODEL x"),
    ],
    ids=["helper in another module", "helper of a helper", "class method"],
)
async def test_editing_code_a_worker_reaches_in_another_module_restarts_it(
    package: Package, module: str, old: str, new: str, restarted: list[str], value: str
) -> None:
    for name, source in (("helpers", HELPERS), ("deep", DEEP), ("models", MODELS), ("workers", WORKERS)):
        package.write(name, source)
    package.write("tree", FOLLOW_TREE)
    async with sv.start(package.target) as tree:
        await asyncio.sleep(0)
        before = values(tree)
        assert before["uses_helper"] == "parsed x" and before["uses_helper_of_helper"] == "inner x!"
        package.edit(module, old, new)
        applied = await tree.reload()
        assert sorted("/".join(path) for path in applied.restarted) == restarted
        await asyncio.sleep(0)
        after = values(tree)
        first = restarted[0]
        assert after[first] == value  # the restarted worker runs the new code
        assert {k: v for k, v in after.items() if k not in restarted} == {
            k: v for k, v in before.items() if k not in restarted
        }
        starts = {c.id: c.starts for c in tree.which_children()}
        assert starts == {c: 2 if c in restarted else 1 for c in starts}


async def test_editing_a_docstring_in_a_helper_module_restarts_nothing(package: Package) -> None:
    for name, source in (("helpers", HELPERS), ("deep", DEEP), ("models", MODELS), ("workers", WORKERS)):
        package.write(name, source)
    package.write("tree", FOLLOW_TREE)
    async with sv.start(package.target) as tree:
        package.edit("deep", "def inner(text):\n", "def inner(text):\n    '''Now documented.'''\n")
        package.edit("models", "class Parser:\n", "# a comment\nclass Parser:\n")
        applied = await tree.reload()
        assert applied.restarted == ()


async def test_a_file_target_follows_the_modules_of_its_directory(tmp_path: Path) -> None:
    helpers = f"helpers_{os.getpid()}_{id(tmp_path) % 10_000}"
    (tmp_path / f"{helpers}.py").write_text('def parse(text):\n    return "parsed " + text\n')
    (tmp_path / "filetree.py").write_text(
        textwrap.dedent(
            f"""
            import asyncio
            import json
            from pyrsistent import pmap
            import supervision as sv
            from {helpers} import parse

            async def uses_helper(ctx):
                ctx.save(pmap({{"v": parse("x")}}))
                await asyncio.Event().wait()

            async def uses_the_stdlib(ctx):
                ctx.save(pmap({{"v": json.dumps("x")}}))
                await asyncio.Event().wait()

            def build():
                return sv.Supervisor([sv.child("a", uses_helper), sv.child("b", uses_the_stdlib)])
            """
        )
    )
    try:
        async with sv.start(str(tmp_path / "filetree.py")) as tree:
            await asyncio.sleep(0)
            helper = tmp_path / f"{helpers}.py"
            helper.write_text(helper.read_text().replace('"parsed "', '"PARSED "'))
            applied = await tree.reload()
            await asyncio.sleep(0)
            assert applied.restarted == (("a",),) and values(tree) == {"a": "PARSED x", "b": '"x"'}
    finally:
        for name in ("_supervision_target_filetree", helpers):
            sys.modules.pop(name, None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))

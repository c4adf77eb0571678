"""Fingerprints, beyond tests/test_diff.py: docstrings added or removed are not a
change, and functions reached in other modules of the tree's own code are followed."""

from __future__ import annotations

import pytest

from supervision._fingerprint import Fingerprints

from .test_diff import load

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

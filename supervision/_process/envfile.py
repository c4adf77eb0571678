"""Environment files (``env_file=``), read the way systemd's ``EnvironmentFile=`` reads them.

A file holds ``KEY=VALUE`` assignments, one a line::

    # a comment (also ; at the start of a line)
    PLAIN = value with  inner  spaces   # not a comment: part of the value
    SINGLE='literal $HOME \\n, no escapes, may span
    lines'
    DOUBLE="a \\"quoted\\" word, \\$ \\\\ \\` unescaped, \\n kept as is"
    JOINED=one\\
    two                                  # a backslash at the end continues the line
    MIXED="a"'b'c                        # quoted pieces are joined: abc

The rules, from systemd's parser (``src/basic/env-file.c``), which this module
follows character for character:

- Whitespace around the key and after ``=`` is dropped; so is trailing whitespace
  of an unquoted value. A line without ``=`` is ignored.
- ``#`` or ``;`` starts a comment only where a key could start.
- Unquoted, a backslash takes the next character literally; backslash-newline is
  a line continuation.
- In single quotes everything is literal, newlines included.
- In double quotes, a backslash escapes only ``"``, ``\\``, ````` and ``$`` (and
  a newline, which it removes); before anything else it is kept.
- After a closing quote, whitespace is skipped and what follows is appended.
- Nothing is expanded (no ``$VAR``).

Assignments whose key is not a valid variable name are ignored, as systemd
ignores them (with a warning in the log). Later assignments win, and a later
file wins over an earlier one.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Iterable

logger = logging.getLogger("supervision")

_COMMENTS = "#;"
_WHITESPACE = " \t\n\r"
_NEWLINE = "\n\r"
_DOUBLE_QUOTE_ESCAPES = '"\\`$'
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class EnvFileError(OSError):
    """An environment file that cannot be used: missing, unreadable, or not UTF-8.
    A start failure of the child that asked for it (``.filename`` says which)."""


def parse(text: str, filename: str = "<env file>") -> dict[str, str]:
    """The assignments of an environment file's ``text``, in order (a later one wins)."""
    pairs: dict[str, str] = {}
    for key, value in _assignments(text):
        if not _NAME.match(key):
            logger.warning("%s: ignoring an assignment to %r: not a variable name", filename, key)
            continue
        pairs[key] = value
    return pairs


def _assignments(text: str) -> Iterable[tuple[str, str]]:
    """``(key, value)`` pairs, as systemd's state machine pushes them."""
    if not any(c in text for c in "'\"\\"):
        return _simple_assignments(text)
    return _machine(text)


def _machine(text: str) -> Iterable[tuple[str, str]]:
    state = "pre_key"
    key: list[str] = []
    value: list[str] = []
    key_end: int | None = None  # where trailing whitespace of the key begins
    value_end: int | None = None  # where trailing whitespace of an unquoted value begins

    def pair() -> tuple[str, str]:
        k = "".join(key[:key_end] if key_end is not None else key)
        return k, "".join(value)

    for c in text:
        if state == "pre_key":
            if c in _COMMENTS:
                state = "comment"
            elif c not in _WHITESPACE:
                state = "key"
                key_end = None
                key = [c]
        elif state == "key":
            if c in _NEWLINE:  # a line without "=": ignored
                state = "pre_key"
                key = []
            elif c == "=":
                state = "pre_value"
                value = []
                value_end = None
            else:
                if c not in _WHITESPACE:
                    key_end = None
                elif key_end is None:
                    key_end = len(key)
                key.append(c)
        elif state == "pre_value":
            if c in _NEWLINE:
                state = "pre_key"
                yield pair()
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif c not in _WHITESPACE:
                state = "value"
                value.append(c)
        elif state == "value":
            if c in _NEWLINE:
                state = "pre_key"
                if value_end is not None:
                    del value[value_end:]
                yield pair()
            elif c == "\\":
                state = "value_escape"
                value_end = None
            else:
                if c not in _WHITESPACE:
                    value_end = None
                elif value_end is None:
                    value_end = len(value)
                value.append(c)
        elif state == "value_escape":
            state = "value"
            if c not in _NEWLINE:  # an escaped newline is a continuation: dropped
                value.append(c)
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value.append(c)
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value.append(c)
        elif state == "double_escape":
            state = "double"
            if c in _DOUBLE_QUOTE_ESCAPES:
                value.append(c)
            elif c != "\n":
                value.extend(("\\", c))
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c in _NEWLINE:
                state = "pre_key"
        else:  # comment_escape: since systemd 254 the next line is not a comment
            state = "pre_key" if c in _NEWLINE else "comment"
    if state in ("pre_value", "value", "value_escape", "single", "double", "double_escape"):
        if state == "value" and value_end is not None:
            del value[value_end:]
        yield pair()


def _simple_assignments(text: str) -> Iterable[tuple[str, str]]:
    """The same as the state machine for a text without quotes or backslashes
    (most files), a line at a time: several times faster."""
    for line in re.split(r"[\r\n]", text):
        line = line.lstrip(_WHITESPACE)
        if not line or line[0] in _COMMENTS:
            continue
        equals = line.find("=", 1)  # a first "=" belongs to the key, as in the state machine
        if equals > 0:
            yield line[:equals].rstrip(_WHITESPACE), line[equals + 1 :].strip(_WHITESPACE)


_cache: dict[str, tuple[tuple[int, int, int], dict[str, str]]] = {}
_CACHE_SIZE = 256


def _read(filename: str) -> dict[str, str]:
    """Parse ``filename``, or reuse the last parse while the file is unchanged
    (same inode, size and modification time): a respawn costs a ``stat``."""
    with open(filename, "rb") as file:
        info = os.fstat(file.fileno())
        key = (info.st_ino, info.st_size, info.st_mtime_ns)
        cached = _cache.get(filename)
        if cached is not None and cached[0] == key:
            return cached[1]
        data = file.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvFileError(errno.EILSEQ, f"environment file is not UTF-8: {exc}", filename) from None
    pairs = parse(text, filename)
    if len(_cache) >= _CACHE_SIZE:
        _cache.clear()
    _cache[filename] = (key, pairs)
    return pairs


def load(paths: Iterable[str]) -> dict[str, str]:
    """The variables of the environment files ``paths``, in order (a later file
    wins). A path with a leading ``-`` may be missing (as in systemd); any other
    missing or unreadable file raises :class:`EnvFileError`."""
    merged: dict[str, str] = {}
    for given in paths:
        optional = given.startswith("-")
        filename = given[1:] if optional else given
        try:
            pairs = _read(filename)
        except EnvFileError:
            raise
        except FileNotFoundError as exc:
            if optional:
                continue
            raise EnvFileError(exc.errno, f"environment file missing: {exc.strerror}", filename) from None
        except OSError as exc:
            raise EnvFileError(exc.errno, f"cannot read environment file: {exc.strerror}", filename) from None
        merged.update(pairs)
    return merged

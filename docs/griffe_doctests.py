"""A Griffe extension for the API reference (see ``extensions:`` in mkdocs.yml).

The docstrings of ``supervision`` are written for ``help()`` and doctest: examples
are ``>>>`` sessions and names are reST roles (``:class:`Supervisor```). The
reference renders docstrings as Markdown, where a ``>>>`` line is a quote and
``[a][b]`` a link; so each doctest session becomes a ``pycon`` code block and each
role a code span.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|data|attr|exc|mod|obj):`~?(?P<text>[^`<]+?)(?: *<[^>]+>)?`")


def fence_doctests(text: str) -> str:
    """Wrap every ``>>>`` session (up to the next blank line) in a ``pycon`` fence."""
    out: list[str] = []
    in_session = False
    indent = ""
    for line in text.splitlines():
        stripped = line.lstrip()
        if not in_session and stripped.startswith(">>>"):
            in_session = True
            indent = line[: len(line) - len(stripped)]
            out.append(f"{indent}```pycon")
        elif in_session and not stripped:
            out.append(f"{indent}```")
            in_session = False
        out.append(line)
    if in_session:
        out.append(f"{indent}```")
    return "\n".join(out)


def rewrite(text: str) -> str:
    parts = re.split(r"(^ *```.*?^ *```)", fence_doctests(text), flags=re.M | re.S)
    # Roles only outside code blocks; code is shown as written.
    return "".join(part if part.lstrip().startswith("```") else ROLE.sub(r"``\g<text>``", part) for part in parts)


class DoctestFences(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)

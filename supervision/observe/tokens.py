"""The dashboard's token: a random secret in a 0600 file beside the control socket.

Whoever can read the file (the tree's own user, root) may act on the tree from
the web page (restart, stop, start); anyone else sees it read-only.
``supervision dashboard`` prints the page's URL with the token in its fragment
(``http://127.0.0.1:9464/#token=...``), which a browser never sends to a server.
"""

from __future__ import annotations

import contextlib
import os


def token_path(control: str) -> str:
    """Where the token of the tree served at control socket ``control`` lives."""
    stem, extension = os.path.splitext(control)
    return (stem if extension == ".sock" else control) + ".token"


def write_token(path: str) -> str:
    """Make a new token and write it to ``path``, born 0600 (replacing an old file
    atomically). Returns the token."""
    import secrets  # here: the short-lived client commands read tokens, they never make one

    token = secrets.token_urlsafe(32)
    temporary = f"{path}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, token.encode() + b"\n")
    finally:
        os.close(fd)
    os.replace(temporary, path)
    return token


def read_token(path: str) -> str | None:
    """The token in ``path``, or None if there is none (or we may not read it)."""
    try:
        with open(path, encoding="ascii") as file:
            return file.read().strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def remove_token(path: str, token: str) -> None:
    """Remove ``path`` if it still holds ``token`` (another tree may have replaced it)."""
    if read_token(path) == token:
        with contextlib.suppress(OSError):
            os.unlink(path)

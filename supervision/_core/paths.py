"""Paths: a child's place in a tree, ``("db", "pool")``, written ``db/pool``."""

from __future__ import annotations

Path = tuple[str, ...]


def format_path(path: Path) -> str:
    """``("db", "pool")`` -> ``"db/pool"``; the root is ``"/"``."""
    return "/".join(path) if path else "/"


def parse_path(path: str | Path) -> Path:
    """``"db/pool"`` or ``("db", "pool")`` -> ``("db", "pool")``; ``""`` or ``"/"`` -> ``()``."""
    if isinstance(path, tuple):
        return path
    return tuple(part for part in path.split("/") if part)

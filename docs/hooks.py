"""MkDocs hooks for the documentation site (see ``hooks:`` in mkdocs.yml).

- Code fences carry markers for tests/test_docs.py in their first line
  (```` ```python test="skip" reason="..." ````). Python-Markdown's fences do not
  accept unknown attributes, so the markers are removed before a page is rendered
  (as pydantic does for pytest-examples); ``title="..."`` is kept, the theme shows it.
- Every public name of ``supervision`` and ``supervision.testing`` must have its own
  ``::: supervision.NAME`` entry in the API reference: a name that is missing is
  reported as a warning, which ``mkdocs build --strict`` turns into a failure. A
  name that is listed but no longer exists fails the build in mkdocstrings itself.
- Pages link to the runnable examples outside docs/ (``../examples/demo.py``): the
  files are copied into the site and the links pointed at the copies.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

log = logging.getLogger("mkdocs.hooks.supervision")

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = {"supervision": "reference/supervision.md", "supervision.testing": "reference/testing.md"}
OUTSIDE = ("examples", "tests")  # folders next to docs/ whose files pages link to

FENCE_MARKERS = re.compile(r'^(?P<fence> *(?:`{3,}|~{3,}) *[\w+-]+)(?P<attrs>(?: +[\w-]+="[^"]*")+) *$', re.M)
KEPT_ATTRIBUTES = re.compile(r'(?:title|hl_lines|linenums)="[^"]*"')
LINK_OUTSIDE = re.compile(r"\]\((?:\.\./)+(examples|tests)/([\w.-]+)\)")  # a link to a file of OUTSIDE
DIRECTIVE = re.compile(r"^::: +(?P<name>[\w.]+) *$", re.M)


def strip_fence_markers(markdown: str) -> str:
    """Drop the test markers from fence lines, keeping what the theme understands."""

    def keep(match: re.Match[str]) -> str:
        kept = KEPT_ATTRIBUTES.findall(match["attrs"])
        return " ".join([match["fence"], *kept])

    return FENCE_MARKERS.sub(keep, markdown)


def public_names() -> dict[str, list[str]]:
    """``{"supervision": [...], "supervision.testing": [...]}``, from ``__all__``."""
    return {module: list(importlib.import_module(module).__all__) for module in REFERENCE}


def documented_names(docs_dir: Path) -> dict[str, set[str]]:
    """The names each reference page has a ``:::`` entry for, by module."""
    found: dict[str, set[str]] = {}
    for module, page in REFERENCE.items():
        text = (docs_dir / page).read_text(encoding="utf-8")
        found[module] = {
            m["name"].removeprefix(module + ".")
            for m in DIRECTIVE.finditer(text)
            if m["name"].rpartition(".")[0] == module
        }
    return found


def on_files(files: Files, config: MkDocsConfig) -> Files:
    docs_dir = Path(config.docs_dir)
    documented = documented_names(docs_dir)
    for module, names in public_names().items():
        missing = [name for name in names if name not in documented[module]]
        if missing:
            log.warning(
                "%s has public names without an entry in docs/%s: %s (add '::: %s.NAME')",
                module,
                REFERENCE[module],
                ", ".join(missing),
                module,
            )
        extra = sorted(documented[module] - set(names) - {"model", "strategies"})
        if extra:
            log.warning("docs/%s documents names %s does not export: %s", REFERENCE[module], module, ", ".join(extra))
    linked = set()
    for page in docs_dir.rglob("*.md"):
        linked.update(LINK_OUTSIDE.findall(page.read_text(encoding="utf-8")))
    for folder, name in sorted(linked):
        files.append(File.generated(config, f"{folder}/{name}", abs_src_path=str(ROOT / folder / name)))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files, **_: Any) -> str:
    markdown = strip_fence_markers(markdown)
    # ``../examples/demo.py`` from a page at the top of docs/ is the copy in the site.
    depth = page.file.src_uri.count("/")
    for folder in OUTSIDE:
        markdown = markdown.replace(f"]({'../' * (depth + 1)}{folder}/", f"]({'../' * depth}{folder}/")
    return markdown

"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright.

The tree renders; a crash shows up on the page within 1 s; the restart button
works with the token, and without it the page is read-only and the action
answers 403.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from typing import Any

import pytest

import supervision as sv
from supervision.observe.http import HttpServer
from supervision.observe.tokens import write_token
from tests.observe_helpers import Served

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root (CI), in a container: no sandbox, and nothing that talks to the network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

try:
    from playwright.async_api import Browser, Page, async_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    async_playwright = None  # type: ignore[assignment]

if (async_playwright is None or not os.path.exists(CHROMIUM)) and os.environ.get("CI") != "true":
    pytest.skip("needs playwright and Debian's chromium (.ci/run installs them)", allow_module_level=True)

pytestmark = pytest.mark.timeout(120)


class browser:
    """``async with browser() as chromium``: headless Chromium, closed at the end."""

    async def __aenter__(self) -> Browser:
        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        return self._browser

    async def __aexit__(self, *exc: Any) -> None:
        await self._browser.close()
        await self._playwright.stop()


def pid_of(tree: sv.Tree, id: str) -> int | None:
    return {info.id: info.pid for info in tree.which_children()}[id]


async def cell(page: Page, path: str, name: str) -> str:
    return await page.inner_text(f'tr[data-path="{path}"] td.{name}')


async def test_dashboard_renders_shows_a_crash_within_a_second_and_acts_only_with_the_token(tmp_path: Any) -> None:
    spec = sv.Supervisor(
        [sv.process("web", ["sleep", "1000"]), sv.child("db", sv.Supervisor([sv.process("pool", ["sleep", "1000"])]))],
        intensity=10,
    )
    async with Served(spec) as served:
        tree = served.tree
        assert tree is not None
        token = write_token(os.path.join(str(tmp_path), "test.token"))
        server = HttpServer(served.source, "127.0.0.1:0", token=token)
        await server.start()
        try:
            async with browser() as chromium:
                page = await chromium.new_page()
                await page.goto(server.url + "#token=" + token)
                await page.wait_for_selector("body[data-loaded=true]", timeout=10_000)
                # The tree renders, nested children under their supervisor.
                paths = await page.eval_on_selector_all("#tree tbody tr", "rows => rows.map(r => r.dataset.path)")
                assert paths == ["web", "db", "db/pool"]
                assert await cell(page, "web", "kind") == "process"
                assert await page.inner_text('tr[data-path="web"] .status') == "running"
                assert await cell(page, "web", "pid") == str(pid_of(tree, "web"))
                assert (await cell(page, "web", "rss")).endswith("iB")
                assert await page.inner_text("#mode") == "actions enabled"
                # Once the page listens to the event stream, crash the child.
                await page.wait_for_selector("body[data-live=true]", state="attached", timeout=10_000)
                pid = pid_of(tree, "web")
                assert pid is not None
                crashed = time.monotonic()
                os.kill(pid, signal.SIGKILL)
                await page.wait_for_selector(
                    '#events li[data-event="ChildExited"][data-path="web"]', state="attached", timeout=1_000
                )
                await page.wait_for_function(
                    "() => document.querySelector('tr[data-path=\"web\"] td.restarts').textContent === '1'",
                    timeout=1_000,
                )
                shown = time.monotonic() - crashed
                assert shown < 1.0, shown
                assert "crash" in await page.inner_text('#events li[data-event="ChildExited"]')

                # The restart button, with the token: a new pid.
                before = pid_of(tree, "web")
                await page.click('tr[data-path="web"] button[data-action="restart"]')
                await page.wait_for_function(
                    f"() => document.querySelector('tr[data-path=\"web\"] td.pid').textContent !== '{before}'",
                    timeout=10_000,
                )
                after = pid_of(tree, "web")
                assert after not in (None, before)
                assert await cell(page, "web", "pid") == str(after)

                # Without the token: read-only, and the action is refused.
                anonymous = await chromium.new_page()
                await anonymous.goto(server.url)
                await anonymous.wait_for_selector("body[data-loaded=true]", timeout=10_000)
                assert (await anonymous.inner_text("#mode")).startswith("read-only")
                assert not await anonymous.is_visible('tr[data-path="web"] button[data-action="restart"]')
                status = await anonymous.evaluate(
                    """async () => (await fetch('/api/restart', {method: 'POST',
                        headers: {'Content-Type': 'application/json'},
                        body: JSON.stringify({path: 'web'})})).status"""
                )
                assert status == 403
                assert pid_of(tree, "web") == after
                # A wrong token is no better.
                wrong = await chromium.new_page()
                await wrong.goto(server.url + "#token=not-the-token")
                await wrong.wait_for_selector("body[data-loaded=true]", timeout=10_000)
                assert (await wrong.inner_text("#mode")).startswith("read-only")
        finally:
            await server.close()

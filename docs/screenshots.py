"""Make the screenshots of docs/observability.md: the dashboard and ``supervision top``.

    python docs/screenshots.py          # writes docs/dashboard.png and docs/top.png

It runs a small tree with ``supervision run --http``, lets a flaky child crash a
few times, then takes the dashboard with headless Chromium (Debian's package,
driven by Playwright) and ``top`` as rich renders it (an SVG, photographed by the
same browser). Needs ``supervision[http,top]``, playwright and chromium.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

from playwright.async_api import async_playwright
from rich.console import Console

from supervision.observe.top import render

HERE = os.path.dirname(os.path.abspath(__file__))
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

APP = """
import sys
import supervision as sv

PY = sys.executable
BURN = "import time\\nwhile True:\\n    sum(range(10000)); time.sleep(0.002)"
HOLD = "data = bytearray(b'x' * (48 << 20))\\nimport time\\nwhile True: time.sleep(60)"

def build():
    return sv.Supervisor(
        [
            sv.process("web", [PY, "-m", "http.server", "0", "--bind", "127.0.0.1"], output="inherit"),
            sv.process("indexer", [PY, "-c", BURN]),
            sv.child(
                "db",
                sv.Supervisor(
                    [
                        sv.process("pool", [PY, "-c", HOLD]),
                        sv.process("replica", ["sh", "-c", "sleep 4; exit 1"]),
                    ],
                    intensity=5,
                    period=60,
                ),
            ),
            sv.process("mailer", ["sleep", "100000"]),
        ],
        intensity=5,
        period=60,
    )
"""


def ping(control: str) -> dict[str, object]:
    from supervision._service.client import Client

    with Client(control, timeout=10) as client:
        result: dict[str, object] = client.call("ping")
        return result


def status(control: str) -> dict[str, object]:
    from supervision._service.client import Client

    with Client(control, timeout=10) as client:
        result: dict[str, object] = client.call("status")
        return result


async def shoot(url: str, token: str, control: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 560})
            await page.goto(f"{url}#token={token}")
            await page.wait_for_selector("body[data-loaded=true]")
            await page.wait_for_timeout(1500)
            await page.screenshot(path=os.path.join(HERE, "dashboard.png"), full_page=True)

            console = Console(record=True, width=120, height=16, file=io.StringIO(), color_system="truecolor")
            console.print(render(status(control)))
            svg = console.export_svg(title="supervision top")
            page = await browser.new_page(viewport={"width": 1280, "height": 520})
            await page.set_content(f"<body style='margin:0;background:#fff'>{svg}</body>")
            await page.locator("svg").screenshot(path=os.path.join(HERE, "top.png"))
        finally:
            await browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="screenshots-") as tmp:
        with open(os.path.join(tmp, "shop.py"), "w") as file:
            file.write(APP)
        control = os.path.join(tmp, "shop.sock")
        argv = [sys.executable, "-m", "supervision", "run", "shop.py", "--control", control, "--http", "127.0.0.1:0"]
        proc = subprocess.Popen(argv, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    found = ping(control)
                    if found["state"] == "running":
                        break
                except Exception:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the tree did not come up")
                time.sleep(0.1)
            url = str(found["http"])
            time.sleep(10)  # the replica crashes twice meanwhile
            with open(os.path.join(tmp, "shop.token")) as file:
                token = file.read().strip()
            with urllib.request.urlopen(url + "api/tree") as response:
                json.load(response)
            asyncio.run(shoot(url, token, control))
        finally:
            proc.terminate()
            proc.wait(30)
    print("wrote docs/dashboard.png and docs/top.png")


if __name__ == "__main__":
    main()

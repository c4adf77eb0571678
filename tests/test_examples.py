"""The examples run, end by themselves, and show what they claim."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_crashes_recovers_and_stops_cleanly() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--seconds", "3"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "exited     ticker [crash]" in out  # it crashed ...
    assert "started    ticker (start #2)" in out  # ... and came back
    assert "exited     pipeline/sink [shutdown]" in out  # rest_for_one took its dependent along
    assert out.rstrip().endswith("stopped cleanly")
    count = int(out.split("ticker counted ")[1].split()[0])
    assert count >= 10  # the count outlived the crash at 10: it lives in the snapshot

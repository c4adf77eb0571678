"""Tools to test supervision trees: an injected clock and fault injection.

``ManualClock`` lets restart windows and backoff delays pass without sleeping;
``crash`` makes a running child exit as crashed.
"""

from __future__ import annotations

from ._clock import ManualClock
from ._crash import crash

__all__ = ["ManualClock", "crash"]

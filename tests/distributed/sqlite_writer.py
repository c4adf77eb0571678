"""Saves a counter through the SQLite store every 10 ms, forever, printing
``<time.monotonic()> <n>`` after each save. tests/distributed/test_stores.py SIGKILLs it.

    python tests/distributed/sqlite_writer.py DATABASE
"""

from __future__ import annotations

import asyncio
import sys
import time

from pyrsistent import pmap

from supervision.stores import sqlite


async def main(filename: str) -> None:
    store = sqlite(filename)
    await store.open()
    record = await store.get(("counter",))
    n = record.value["n"] if record is not None else 0
    print(f"START {n}", flush=True)
    while True:
        n += 1
        await store.put(("counter",), pmap({"n": n}))
        print(f"{time.monotonic()} {n}", flush=True)
        await asyncio.sleep(0.01)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))

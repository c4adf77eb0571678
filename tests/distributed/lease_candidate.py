"""A process that campaigns for an etcd lease and, while it leads, writes to a
fencing service with its fencing token. Used by tests/distributed/test_failover.py.

    python tests/distributed/lease_candidate.py NAME WRITER TTL GUARD SERVICE_PORT ENDPOINT...

Prints one line per change, flushed: ``LEADER <fence>``, ``LOST <fence> <reason>``,
``STALE <fence>`` (the service refused a write). Before every write it checks
that its term still holds, so a process resumed after a pause stops writing as
soon as it runs; a write already past that check when the pause came is the
service's to refuse.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from supervision.lease import etcd


async def main(name: str, writer: str, ttl: int, guard: float, port: int, endpoints: list[str]) -> None:
    election = etcd(name, endpoints, ttl=ttl).election(writer, guard=guard)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    reader, sender = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not stop.is_set():
            campaign = asyncio.ensure_future(election.campaign())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([campaign, stopping], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if stop.is_set():
                campaign.cancel()
                await asyncio.wait([campaign])
                break
            term = campaign.result()
            print(f"LEADER {term.fence}", flush=True)
            seq = 0
            while not stop.is_set():
                await asyncio.sleep(0.02)
                if not term.held():
                    break
                seq += 1
                sender.write(f"WRITE {term.fence} {writer} {seq}\n".encode())
                await sender.drain()
                answer = (await reader.readline()).decode().strip()
                if answer != "OK":
                    print(f"STALE {term.fence}", flush=True)
            term.held()
            print(f"LOST {term.fence} {term.reason}", flush=True)
    finally:
        sender.close()
        await sender.wait_closed()
        await election.close()


if __name__ == "__main__":
    name, writer, ttl, guard, port, *endpoints = sys.argv[1:]
    asyncio.run(main(name, writer, int(ttl), float(guard), int(port), endpoints))

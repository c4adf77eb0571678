"""A fencing service for tests: it accepts a write only if its token is at least
the largest token it has seen, as Kleppmann's storage service does, and keeps a
record of every write it accepted and refused.

Protocol, one line each way over TCP: ``WRITE <token> <writer> <seq>`` -> ``OK`` or ``STALE``.
"""

from __future__ import annotations

import contextlib
import socketserver
import threading
import time
from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True)
class Write:
    time: float  # time.monotonic() when the service decided
    token: int
    writer: str
    seq: int
    accepted: bool


class FencingService:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.highest = 0
        self.writes: list[Write] = []
        service = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                with contextlib.suppress(ConnectionResetError):  # a writer killed mid-request
                    self.serve()

            def serve(self) -> None:
                for line in self.rfile:
                    _, token, writer, seq = line.decode().split()
                    with service.lock:
                        accepted = int(token) >= service.highest
                        if accepted:
                            service.highest = int(token)
                        service.writes.append(Write(time.monotonic(), int(token), writer, int(seq), accepted))
                    self.wfile.write(b"OK\n" if accepted else b"STALE\n")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="fencing", daemon=True)

    def __enter__(self) -> FencingService:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def accepted(self) -> list[Write]:
        with self.lock:
            return [write for write in self.writes if write.accepted]

    def rejected(self) -> list[Write]:
        with self.lock:
            return [write for write in self.writes if not write.accepted]

    def writers_by_token(self) -> dict[int, set[str]]:
        found: dict[int, set[str]] = defaultdict(set)
        for write in self.accepted():
            found[write.token].add(write.writer)
        return dict(found)

    def check(self) -> None:
        """The safety property: one writer per token, tokens never going back."""
        accepted = self.accepted()
        for token, writers in self.writers_by_token().items():
            assert len(writers) == 1, f"token {token} was used by several writers: {writers}"
        tokens = [write.token for write in accepted]
        assert tokens == sorted(tokens), "the service accepted a token smaller than one before it"

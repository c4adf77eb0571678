"""A small asyncio client for etcd v3, through etcd's own JSON gateway over HTTP.

Why not a gRPC client: the asyncio gRPC clients for Python (aetcd, etcetra)
need grpcio, whose C core does not survive ``fork()`` without care, and a
supervisor forks children all day; grpcio is also a large binary wheel for the
handful of calls used here. etcd serves the same v3 API as JSON over HTTP/1.1
(the grpc-gateway, on by default on the client port, ``/v3/kv/range`` and so
on), so this client needs only ``aiohttp``, a well-kept asyncio HTTP client,
installed by the ``supervision[etcd]`` extra.

What it does: POST one JSON request to one endpoint, with a deadline; on a
connection failure, a timeout or an "unavailable" answer it tries the next
endpoint (every call used here is safe to repeat: see the callers). Keys and
values are bytes, base64 in the JSON, as the gateway wants them.
"""

from __future__ import annotations

from ._client import EtcdClient, EtcdError, EtcdUnavailable, b64, unb64

__all__ = ["EtcdClient", "EtcdError", "EtcdUnavailable", "b64", "unb64"]

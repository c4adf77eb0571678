"""The HTTP endpoint on a real socket over a real tree: metrics, probes, the
status JSON, server-sent events, and actions that need the token."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import supervision as sv
from supervision.observe.figures import health
from supervision.observe.http import MAX_STREAMS, HttpServer, parse_address
from supervision.observe.metrics import METRICS, Exporter
from supervision.observe.service import Observability
from supervision.observe.tokens import read_token, remove_token, token_path, write_token
from tests.observe_helpers import Served, fetch

SLEEP = ["sleep", "1000"]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def pid_of(tree: sv.Tree, id: str) -> int | None:
    return {info.id: info.pid for info in tree.which_children()}[id]


async def test_metrics_probes_and_tree_of_a_running_tree() -> None:
    spec = sv.Supervisor(
        [
            sv.process("web", SLEEP),
            sv.child("db", sv.Supervisor([sv.process("pool", SLEEP)], intensity=5)),
        ]
    )
    async with Served(spec) as served:
        server = HttpServer(served.source, "127.0.0.1:0")
        await server.start()
        try:
            assert server.url.startswith("http://127.0.0.1:") and server.port > 0
            code, body = await fetch(server.url + "metrics")
            assert code == 200
            found = samples(body.decode())
            web = (("kind", "process"), ("path", "web"), ("supervisor", "/"))
            pool = (("kind", "process"), ("path", "db/pool"), ("supervisor", "db"))
            db = (("kind", "supervisor"), ("path", "db"), ("supervisor", "/"))
            for labels in (web, pool, db):
                assert found[("supervision_child_up", labels)] == 1.0
                assert found[("supervision_child_restarts_total", labels)] == 0.0
                assert found[("supervision_child_start_failures_total", labels)] == 0.0
            for labels in (web, pool):  # figures of process children only
                assert found[("supervision_child_resident_memory_bytes", labels)] > 0
                assert found[("supervision_child_open_fds", labels)] >= 3
                assert ("supervision_child_cpu_seconds_total", labels) in found
            assert found[("supervision_tree_reloads_total", (("outcome", "applied"),))] == 0.0
            assert found[("process_resident_memory_bytes", ())] > 0  # the supervisor's own
            assert any(name == "python_info" for name, _ in found)

            assert await fetch(server.url + "healthz") == (200, b"ok\n")
            assert await fetch(server.url + "readyz") == (200, b"ok\n")
            code, body = await fetch(server.url + "api/tree")
            tree = json.loads(body)
            assert code == 200 and tree["health"] == {"live": True, "ready": True, "reason": "ok"}
            assert [node["path"] for node in tree["children"]] == ["web", "db"]
            assert tree["children"][0]["resources"]["processes"] == 1
            assert tree["children"][1]["children"][0]["path"] == "db/pool"
        finally:
            await server.close()


async def test_readyz_is_503_while_a_child_waits_for_its_restart() -> None:
    spec = sv.Supervisor(
        [sv.process("web", SLEEP), sv.process("flaky", ["sh", "-c", "exit 3"])],
        intensity=100,
        backoff=sv.Backoff(initial=30.0, maximum=30.0, jitter=0.0),
    )
    async with Served(spec.replace(children=spec.children[:1])) as served:
        assert served.tree is not None
        events = served.tree.events()
        await served.tree.start_child(spec.children[1])  # starts, then crashes: a restart 30 s away
        async for event in events:
            if isinstance(event, sv.RestartScheduled):
                break
        await events.aclose()
        server = HttpServer(served.source, "127.0.0.1:0")
        await server.start()
        try:
            assert await fetch(server.url + "healthz") == (200, b"ok\n")
            assert await fetch(server.url + "readyz") == (503, b"flaky is restarting\n")
            _, body = await fetch(server.url + "metrics")
            found = samples(body.decode())
            flaky = (("kind", "process"), ("path", "flaky"), ("supervisor", "/"))
            assert found[("supervision_child_up", flaky)] == 0.0
            assert ("supervision_child_resident_memory_bytes", flaky) not in found
        finally:
            await server.close()


def test_health_judges_the_state_escalation_and_every_child() -> None:
    running = {"path": "a", "status": "running"}
    assert health({"state": "starting", "children": []}).to_json() == {
        "live": False,
        "ready": False,
        "reason": "the tree is starting",
    }
    assert health({"state": "running", "children": [running]}).ready
    stopped = {"path": "b", "status": "terminated"}
    nested = {"path": "s", "status": "running", "children": [{"path": "s/c", "status": "stopping"}]}
    assert health({"state": "running", "children": [running, stopped]}).ready
    assert health({"state": "running", "children": [running, nested]}).reason == "s/c is stopping"
    gave_up = health({"state": "running", "escalating": True, "children": [running]})
    assert not gave_up.live and gave_up.reason == "the root supervisor gave up"
    assert not health({"state": "stopping", "children": []}).live
    assert health({"state": "reloading", "children": []}).live


async def test_events_stream_shows_a_crash_and_actions_need_the_token(tmp_path: object) -> None:
    spec = sv.Supervisor([sv.process("web", SLEEP)], intensity=10)
    async with Served(spec) as served:
        assert served.tree is not None
        token = write_token(os.path.join(str(tmp_path), "test.token"))
        server = HttpServer(served.source, "127.0.0.1:0", token=token)
        await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
            async with asyncio.timeout(10):
                head = await reader.readuntil(b": subscribed\n\n")
            assert b"200 OK" in head and b"text/event-stream" in head
            pid = pid_of(served.tree, "web")
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            seen = []
            async with asyncio.timeout(10):
                while not any(e["event"] == "ChildStarted" for e in seen):
                    chunk = await reader.readuntil(b"\n\n")
                    if b"data: " in chunk:
                        seen.append(json.loads(chunk.split(b"data: ", 1)[1].split(b"\n", 1)[0]))
            crash = seen[0]
            assert crash["event"] == "ChildExited" and crash["path"] == "web" and crash["reason"] == "crash"
            assert crash["signal"] == signal.SIGKILL

            before = pid_of(served.tree, "web")
            assert (await fetch(server.url + "api/restart", None, {"path": "web"}))[0] == 403
            assert (await fetch(server.url + "api/restart", "wrong", {"path": "web"}))[0] == 403
            assert (await fetch(server.url + "api/auth", "wrong"))[0] == 403
            assert pid_of(served.tree, "web") == before
            assert (await fetch(server.url + "api/auth", token))[0] == 200
            code, body = await fetch(server.url + "api/restart", token, {"path": "web"})
            assert code == 200 and json.loads(body)["status"] == "running"
            assert pid_of(served.tree, "web") not in (None, before)
            code, body = await fetch(server.url + "api/stop", token, {"path": "nope"})
            assert code == 404 and json.loads(body)["error"] == "NotFound"
            code, _ = await fetch(server.url + "api/stop", token, {"path": "web"})
            assert code == 200 and pid_of(served.tree, "web") is None
            assert (await fetch(server.url + "readyz"))[0] == 200  # stopped on purpose
        finally:
            await server.close()  # with the event stream still open
            writer.close()
            await writer.wait_closed()


async def test_event_streams_are_bounded() -> None:
    async with Served(sv.Supervisor([])) as served:
        server = HttpServer(served.source, "127.0.0.1:0")
        await server.start()
        streams = []
        try:
            for _ in range(MAX_STREAMS):
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                streams.append(writer)
                writer.write(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                async with asyncio.timeout(10):
                    await reader.readuntil(b": subscribed\n\n")
            assert await raw_get(server.port, "/api/events", "127.0.0.1") == 503
            assert await raw_get(server.port, "/healthz", "127.0.0.1") == 200
        finally:
            await server.close()
            for writer in streams:
                writer.close()
                await writer.wait_closed()


async def test_the_dashboard_is_served_with_its_assets_and_no_cdn() -> None:
    async with Served(sv.Supervisor([sv.process("web", SLEEP)])) as served:
        server = HttpServer(served.source, "127.0.0.1:0")
        await server.start()
        try:
            code, page = await fetch(server.url)
            assert code == 200 and b'<script src="/static/dashboard.js"' in page
            for asset in (b"/static/dashboard.js", b"/static/dashboard.css"):
                assert asset in page
                assert (await fetch(server.url + asset.decode()[1:]))[0] == 200
            assert b"http" not in page.replace(b"http-equiv", b"")  # nothing from elsewhere
        finally:
            await server.close()


async def test_on_loopback_only_loopback_host_names_are_answered() -> None:
    async with Served(sv.Supervisor([])) as served:
        server = HttpServer(served.source, "127.0.0.1:0")
        await server.start()
        try:
            for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", "[::1]:80", "localhost"):
                assert await raw_get(server.port, "/healthz", host) == 200, host
            for host in (f"evil.example:{server.port}", "evil.example", "10.0.0.1:80"):
                assert await raw_get(server.port, "/api/tree", host) == 421, host
        finally:
            await server.close()


async def raw_get(port: int, path: str, host: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return int((await reader.readline()).split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


async def test_an_address_in_use_fails_at_start() -> None:
    async with Served(sv.Supervisor([])) as served:
        first = HttpServer(served.source, "127.0.0.1:0")
        await first.start()
        try:
            second = HttpServer(served.source, f"127.0.0.1:{first.port}")
            with pytest.raises(OSError):
                await second.start()
        finally:
            await first.close()


def test_addresses_default_to_loopback() -> None:
    assert parse_address("9464") == ("127.0.0.1", 9464)
    assert parse_address(":9464") == ("127.0.0.1", 9464)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    with pytest.raises(ValueError):
        parse_address("localhost:http")
    with pytest.raises(ValueError):
        parse_address("70000")


def test_token_file_is_private_and_removed_only_by_its_owner(tmp_path: object) -> None:
    control = os.path.join(str(tmp_path), "app.sock")
    path = token_path(control)
    assert path == os.path.join(str(tmp_path), "app.token")
    token = write_token(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_token(path) == token and len(token) >= 40
    newer = write_token(path)
    remove_token(path, token)  # not ours any more: kept
    assert read_token(path) == newer
    remove_token(path, newer)
    assert not os.path.exists(path)


def test_every_documented_metric_is_listed() -> None:
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "observability.md")) as file:
        docs = file.read()
    for name in METRICS:
        assert f"`{name}`" in docs, name


def test_a_family_is_formatted_again_when_a_value_changes() -> None:
    def status(rss: int, restarts: int) -> dict[str, Any]:
        resources = {"cpu_seconds": 1.0, "rss_bytes": rss, "fds": 4, "threads": 1}
        node = {"path": "web", "kind": "process", "status": "running", "restarts": restarts, "resources": resources}
        return {"state": "running", "children": [node]}

    exporter = Exporter()
    labels = (("kind", "process"), ("path", "web"), ("supervisor", "/"))
    for rss, restarts in ((100, 0), (100, 0), (200, 0), (200, 3)):
        text = exporter.render(status(rss, restarts)).decode()
        found = samples(text)
        assert found[("supervision_child_resident_memory_bytes", labels)] == rss
        assert found[("supervision_child_restarts_total", labels)] == restarts
        tree_part = text[text.index("# HELP supervision_") :]
        fresh = Exporter().render(status(rss, restarts)).decode()
        assert tree_part == fresh[fresh.index("# HELP supervision_") :]


async def test_observability_serves_with_a_token_beside_the_socket_and_writes_the_termination_message(
    tmp_path: Any,
) -> None:
    control = os.path.join(str(tmp_path), "app.sock")
    termination_log = os.path.join(str(tmp_path), "termination-log")
    async with Served(sv.Supervisor([sv.process("web", SLEEP)])) as served:
        observability = Observability(served.now, http="127.0.0.1:0", termination_log=termination_log)
        assert observability.url is None
        await observability.start(served.handler, served.events, control)
        try:
            url = observability.url
            assert url is not None and url.startswith("http://127.0.0.1:")
            token = read_token(token_path(control))
            assert token is not None and os.stat(token_path(control)).st_mode & 0o777 == 0o600
            assert (await fetch(url + "api/auth", token))[0] == 200
            observability.observe(sv.ChildStarted(path=("web",), time=1.0, starts=2, pid=7))
            observability.gave_up(sv.TooManyRestarts((), 3, 5.0))
        finally:
            await observability.close()
    assert not os.path.exists(token_path(control))
    with open(termination_log) as file:
        lines = file.read().splitlines()
    assert lines[0].startswith("TooManyRestarts: ") and lines[1] == "last events:"
    assert lines[2].endswith("web ChildStarted starts=2 pid=7")
    with pytest.raises(ValueError):
        Observability(served.now, http="nowhere")
    assert Observability(served.now).termination_log in (None, "/dev/termination-log")

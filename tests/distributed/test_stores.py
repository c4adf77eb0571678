"""Snapshot stores: the codec, the memory and SQLite stores, and the etcd store on a real cluster."""

from __future__ import annotations

import asyncio
import math
import os
import pickle
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrsistent import PRecord, b, field, pdeque, plist, pmap, pset, pvector

import supervision.lease as lease
import supervision.stores as stores
from supervision.stores import DEFAULT_FLUSH_INTERVAL, Record
from tests.distributed.etcd_cluster import EtcdCluster, etcd_cluster, require_etcd

ROOT = str(Path(__file__).resolve().parents[2])

# -- the codec ---------------------------------------------------------------------

atoms = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8) | st.binary(max_size=8)
)
hashable = st.recursive(atoms, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=6)
values = st.recursive(
    atoms,
    lambda inner: (
        st.lists(inner, max_size=4).map(pvector)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(hashable, inner, max_size=4).map(pmap)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4).map(pmap)
        | st.frozensets(hashable, max_size=4).map(pset)
        | st.frozensets(hashable, max_size=4)
        | st.lists(hashable, max_size=4).map(lambda items: b(*items))
        | st.lists(inner, max_size=4).map(plist)
        | st.lists(inner, max_size=4).map(pdeque)
    ),
    max_leaves=8,
)


@settings(max_examples=300)
@given(value=values, version=st.integers(0, 10))
def test_the_codec_round_trips_every_snapshot_value(value: object, version: int) -> None:
    decoded, decoded_version = stores.decode(stores.encode(value, version))
    assert decoded_version == version
    assert decoded == value
    assert type(decoded) is type(value)


def test_the_codec_keeps_floats_json_lacks() -> None:
    decoded = stores.decode(stores.encode((math.inf, -math.inf, math.nan, -0.0)))[0]
    assert decoded[:2] == (math.inf, -math.inf) and math.isnan(decoded[2])
    assert math.copysign(1, decoded[3]) == -1


def test_the_codec_refuses_what_it_cannot_decode_safely() -> None:
    class Point(PRecord):
        x = field()

    with pytest.raises(stores.CodecError, match="serialize"):
        stores.encode(Point(x=1))
    with pytest.raises(TypeError, match=r"immutable plain data.*list"):
        stores.encode(pmap({"a": [1]}))
    for junk in (
        b"not json",
        pickle.dumps(pmap({"a": 1})),
        b'{"format": 2, "value": 1}',
        b'{"format":1,"value":{"$t":1}}',
    ):
        with pytest.raises(stores.CodecError):
            stores.decode(junk)


def test_a_map_whose_keys_look_like_tags_is_kept_apart_from_tags() -> None:
    value = pmap({"$t": 1, "$b": "x"})
    assert stores.decode(stores.encode(value))[0] == value
    assert stores.decode(stores.encode(pmap({1: "a", (2, 3): "b"})))[0] == pmap({1: "a", (2, 3): "b"})


# -- memory ------------------------------------------------------------------------


async def test_the_memory_store_keeps_the_values_themselves() -> None:
    store = stores.memory()
    await store.open()
    value = pmap({"n": pvector([1])})
    await store.put(("a", "b"), value, 2)
    record = await store.get(("a", "b"))
    assert record == Record(value, 2) and record.value is value
    assert dict(await store.items()) == {("a", "b"): Record(value, 2)}
    await store.delete(("a", "b"))
    assert await store.get(("a", "b")) is None
    await store.close()


# -- SQLite ------------------------------------------------------------------------


async def test_sqlite_survives_close_and_reopen_in_wal_mode(tmp_path: Path) -> None:
    filename = tmp_path / "state" / "snapshots.db"
    store = stores.sqlite(filename)
    await store.open()
    await store.put(("web",), pmap({"n": 1}))
    await store.put(("db", "pool"), (1, b"\x00", frozenset({2})), 3)
    await store.put(("gone",), pmap())
    await store.delete(("gone",))
    assert (await store.get(("web",))) == Record(pmap({"n": 1}), 0)  # read your writes, before the flush
    await store.close()
    with sqlite3.connect(filename) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert {row[0] for row in db.execute("SELECT path FROM snapshots")} == {"web", "db/pool"}
    again = stores.sqlite(filename)
    await again.open()
    assert dict(await again.items()) == {
        ("web",): Record(pmap({"n": 1}), 0),
        ("db", "pool"): Record((1, b"\x00", frozenset({2})), 3),
    }
    await again.close()
    fresh = stores.sqlite(filename, fresh=True)
    await fresh.open()
    assert dict(await fresh.items()) == {}
    await fresh.put(("web",), pmap({"n": 2}))
    await fresh.clear()
    assert dict(await fresh.items()) == {}
    await fresh.close()


async def test_sqlite_writes_saves_in_batches_within_the_flush_interval(tmp_path: Path) -> None:
    filename = tmp_path / "snapshots.db"
    store = stores.sqlite(filename, flush_interval=0.05)
    await store.open()
    try:
        # 2 000 saves of 100 paths: staged at once, written in a few transactions.
        started = time.perf_counter()
        for n in range(2_000):
            store.stage((f"c{n % 100}",), Record(pmap({"n": n})))
        staging = time.perf_counter() - started
        assert staging < 1.0, f"staging 2000 saves took {staging:.3f}s on the event loop"
        await store.flush()
        with sqlite3.connect(filename) as db:
            rows = dict(db.execute("SELECT path, data FROM snapshots").fetchall())
        assert len(rows) == 100
        assert stores.decode(rows["c99"])[0] == pmap({"n": 1999})
        # A save is written without anyone calling flush: wait (bounded) for another reader to see it.
        store.stage(("late",), Record(pmap({"n": 1})))
        deadline = time.monotonic() + 5.0
        while True:
            with sqlite3.connect(filename) as db:
                if db.execute("SELECT 1 FROM snapshots WHERE path = 'late'").fetchone():
                    break
            assert time.monotonic() < deadline, "a save was not written within 5 s"
            await asyncio.sleep(0.02)
    finally:
        await store.close()


async def test_a_snapshot_over_the_limit_is_refused_when_it_is_saved(tmp_path: Path) -> None:
    store = stores.sqlite(tmp_path / "s.db", max_bytes=1000)
    await store.open()
    try:
        with pytest.raises(
            stores.SnapshotTooLarge, match=r"big/one is \d+ bytes encoded, more than .* 1000 bytes"
        ) as caught:
            await store.put(("big", "one"), pmap({"blob": b"x" * 1000}))
        assert caught.value.path == ("big", "one") and caught.value.size > 1000
        assert isinstance(caught.value, ValueError)
        assert await store.get(("big", "one")) is None
        await store.put(("big", "one"), pmap({"blob": b"x" * 100}))
    finally:
        await store.close()
    assert stores.DEFAULT_MAX_BYTES == 1 << 20


@pytest.mark.timeout(60)
def test_sqlite_loses_at_most_the_flush_window_when_the_writer_is_sigkilled(tmp_path: Path) -> None:
    filename = tmp_path / "snapshots.db"
    env = dict(os.environ, PYTHONPATH=ROOT)
    script = str(Path(__file__).with_name("sqlite_writer.py"))
    saved_at: dict[int, float] = {}
    last = 0
    for _ in range(2):  # kill, restart, kill again: the counter goes on from what was written
        writer = subprocess.Popen([sys.executable, script, str(filename)], stdout=subprocess.PIPE, env=env)
        assert writer.stdout is not None
        first = writer.stdout.readline().split()
        assert first[0] == b"START"
        start = int(first[1])
        assert start <= last, "the store holds a value never saved"
        saved = 0
        while saved < 60:  # about 0.6 s of saves every 10 ms
            when, n = writer.stdout.readline().split()
            saved_at[int(n)] = float(when)
            saved += 1
            last = int(n)
        killed = time.monotonic()
        writer.kill()
        writer.wait(10)
        writer.stdout.close()
        with sqlite3.connect(filename) as db:
            (data,) = db.execute("SELECT data FROM snapshots WHERE path = 'counter'").fetchone()
        stored = stores.decode(data)[0]["n"]
        assert start < stored <= last + 1
        if stored < last:
            # Every lost save is younger than the flush window (100 ms) plus one write.
            oldest_lost = saved_at[stored + 1]
            assert killed - oldest_lost < stores.DEFAULT_FLUSH_INTERVAL + 0.5, (
                f"lost saves from {killed - oldest_lost:.3f}s before the kill"
            )
        last = stored


# -- etcd --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    require_etcd()
    with etcd_cluster(tmp_path_factory.mktemp("etcd")) as running:
        yield running


async def test_the_etcd_store_shares_snapshots_between_stores(cluster: EtcdCluster) -> None:
    one = stores.etcd(cluster.endpoints, "/test/shared/")
    two = stores.etcd(list(reversed(cluster.endpoints)), "/test/shared/")
    await one.open()
    await two.open()
    try:
        await one.put(("web",), pmap({"n": 1}), 2)
        await one.put(("db", "pool"), pvector([b"x"]))
        await one.flush()
        assert await two.get(("web",)) == Record(pmap({"n": 1}), 2)
        assert dict(await two.items()) == {("web",): Record(pmap({"n": 1}), 2), ("db", "pool"): Record(pvector([b"x"]))}
        await two.delete(("web",))
        await two.flush()
        assert await one.get(("web",)) is None
        with pytest.raises(stores.SnapshotTooLarge):
            await one.put(("huge",), b"x" * stores.DEFAULT_MAX_BYTES)
        await one.clear()
        assert dict(await two.items()) == {}
    finally:
        await one.close()
        await two.close()


async def test_a_fenced_write_of_a_deposed_leader_is_refused(cluster: EtcdCluster) -> None:
    spec = lease.etcd("fenced-store", cluster.endpoints, ttl=3)
    first, second = spec.election("first"), spec.election("second")
    store = stores.etcd(cluster.endpoints, "/test/fenced/")
    await store.open()
    try:
        term = await first.campaign()
        await store.put(("singleton",), pmap({"n": 1}), fence=term.token)
        await store.flush()
        assert (await store.get(("singleton",))) == Record(pmap({"n": 1}))
        await first.resign()
        successor = await second.campaign()
        assert successor.fence > term.fence
        await store.put(("singleton",), pmap({"n": 2}), fence=successor.token)
        await store.flush()
        await store.put(("singleton",), pmap({"n": 1}), fence=term.token)  # the old leader, late
        await store.flush()
        assert store.failed_writes == 1
        reader = stores.etcd(cluster.endpoints, "/test/fenced/")
        await reader.open()
        assert (await reader.get(("singleton",))) == Record(pmap({"n": 2}))
        await reader.close()
    finally:
        await store.close()
        await first.close()
        await second.close()


async def test_a_term_outlives_its_ttl_by_keep_alive_and_ends_by_resigning(cluster: EtcdCluster) -> None:
    spec = lease.etcd("keep-alive", cluster.endpoints, ttl=2)
    leader, standby = spec.election("leader", guard=0.3), spec.election("standby")
    try:
        term = await leader.campaign()
        waiting = asyncio.ensure_future(standby.campaign())
        await asyncio.sleep(5)  # 2.5 ttl: kept alive by renewals, not by luck
        assert term.held() and not waiting.done()
        await leader.resign()
        assert not term.held() and term.reason == "resigned"
        successor = await asyncio.wait_for(waiting, 5)
        assert successor.fence > term.fence
    finally:
        await leader.close()
        await standby.close()


def test_a_lease_is_a_validated_value() -> None:
    spec = lease.etcd("a", "http://127.0.0.1:2379/", ttl=5)
    assert spec == lease.etcd("a", ["http://127.0.0.1:2379"], ttl=5)
    assert spec.key == b"/supervision/leader/a"
    for bad in ({"ttl": 1}, {"ttl": 2.5}, {"ttl": True}):
        with pytest.raises(ValueError, match="ttl"):
            lease.etcd("a", "http://x", **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        lease.etcd("", "http://x")
    with pytest.raises(ValueError, match="guard"):
        spec.election(guard=5)


COUNTER_TREE = """
import asyncio, time
import supervision as sv

async def counter(ctx):
    n = ctx.state.get("n", 0)
    print(f"START {n}", flush=True)
    while True:
        await asyncio.sleep(0.01)
        n += 1
        ctx.save(ctx.state.set("n", n))
        print(f"{time.monotonic()} {n}", flush=True)

def build():
    return sv.Supervisor([sv.child("counter", counter)])
"""


@pytest.mark.timeout(90)
def test_a_supervision_run_daemon_sigkilled_restarts_from_its_sqlite_snapshots(tmp_path: Path) -> None:
    """`supervision run` keeps snapshots in SQLite in its state directory: a counter saved
    every 10 ms survives SIGKILL of the daemon, losing at most the flush window."""
    tree = tmp_path / "counter_tree.py"
    tree.write_text(COUNTER_TREE)
    env = dict(
        os.environ, PYTHONPATH=ROOT, XDG_RUNTIME_DIR=str(tmp_path / "xdg"), STATE_DIRECTORY=str(tmp_path / "state")
    )
    argv = [sys.executable, "-m", "supervision", "run", str(tree), "--name", "counter"]
    last, killed, saved_at = 0, 0.0, {}
    for run in range(3):
        daemon = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert daemon.stdout is not None
        words = daemon.stdout.readline().split()
        assert words[0] == b"START", words
        start = int(words[1])
        if run:
            assert start <= last, "a value never saved came back"
            lost = last - start
            if lost:  # every lost save was younger than the window when the daemon died
                assert killed - saved_at[start + 1] < DEFAULT_FLUSH_INTERVAL + 0.5, lost
        else:
            assert start == 0
        for _ in range(40):
            when, n = daemon.stdout.readline().split()
            last = int(n)
            saved_at[last] = float(when)
        killed = time.monotonic()
        daemon.kill()
        daemon.wait(10)
        daemon.stdout.close()
    assert (tmp_path / "state" / "counter.db").exists()  # in the state directory, which outlives a reboot
    # --fresh forgets them.
    daemon = subprocess.Popen([*argv, "--fresh"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert daemon.stdout is not None
    assert daemon.stdout.readline().split() == [b"START", b"0"]
    daemon.terminate()
    assert daemon.wait(20) == 0
    daemon.stdout.close()

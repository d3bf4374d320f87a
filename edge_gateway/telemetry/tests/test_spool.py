import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from edge_gateway.telemetry.spool import Spool, SpoolFull


async def test_spool_keeps_order_across_restart_and_refuses_beyond_its_bound(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="fjordgate.edge.spool")
    registry = CollectorRegistry()
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=1000, registry=registry)
    await spool.open()
    for i in range(8):
        await spool.append("fj.up.demo.e1.telemetry", f"m{i}", b"x" * 100)
    assert "spool is 80% full" in caplog.text
    assert registry.get_sample_value("fjordgate_edge_spool_bytes") == 800
    await spool.remove([(await spool.head(1))[0].seq])
    await spool.close()

    reopened = Spool(tmp_path / "s.sqlite3", max_bytes=1000, registry=CollectorRegistry())
    await reopened.open()
    assert [m.msg_id for m in await reopened.head()] == [f"m{i}" for i in range(1, 8)]
    assert (reopened.records, reopened.bytes) == (7, 700)
    for i in range(8, 11):
        await reopened.append("s", f"m{i}", b"y" * 100)
    with pytest.raises(SpoolFull):
        await reopened.append("s", "too-much", b"z" * 100)
    assert "refused" in caplog.text
    await reopened.close()


async def test_spool_counts_a_message_only_once_it_is_committed(tmp_path):
    """`/ready` reports `spool_records`: a record queued but not yet committed would be lost by a SIGKILL, so
    it must not be counted as held by the spool (an operator, or a test, killing the edge on that count loses it)."""
    registry = CollectorRegistry()
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=1000, registry=registry)
    await spool.open()
    spool.reserve(100, "record")
    written = spool.write_records([(0, b"r" * 100)])
    assert (spool.records, spool.bytes, spool.pending_bytes) == (0, 0, 100)
    assert registry.get_sample_value("fjordgate_edge_spool_records") == 0
    await written
    assert (spool.records, spool.bytes, spool.pending_bytes) == (1, 100, 0)
    assert registry.get_sample_value("fjordgate_edge_spool_records") == 1

    appended = asyncio.ensure_future(spool.append("s", "p1", b"p" * 50))
    await asyncio.sleep(0)
    assert (spool.records, spool.pending_bytes) == (1, 50)
    await appended
    assert (spool.records, spool.bytes, spool.pending_bytes) == (2, 150, 0)
    await spool.close()


async def test_a_failed_spool_write_gives_its_reservation_back(tmp_path, caplog):
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=1000, registry=CollectorRegistry())
    await spool.open()
    await spool._submit(lambda db: db.execute("DROP TABLE records"))
    spool.reserve(900, "record")
    with pytest.raises(Exception, match="no such table"):
        await spool.write_records([(0, b"r" * 900)])
    assert (spool.records, spool.bytes, spool.pending_bytes) == (0, 0, 0)
    await spool.append("s", "p1", b"p" * 900)  # the bound is free again
    await spool.close()


async def test_a_group_larger_than_one_insert_statement_is_stored_whole_and_in_order(tmp_path):
    """Records go in as multi-row INSERTs of `_ROWS_PER_INSERT` rows: a group of any size must land complete, in
    the order written, with kinds and bodies matched, and be counted once committed."""
    from edge_gateway.telemetry import spool as spool_module

    count = 2 * spool_module._ROWS_PER_INSERT + 7
    items = [(i % 3, f"body-{i}".encode()) for i in range(count)]
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=1_000_000, registry=CollectorRegistry())
    await spool.open()
    spool.reserve(sum(len(body) for _, body in items), "record")
    await spool.write_records(items)
    await spool.write_records([(1, b"after")])
    rows = await spool.head_records(count + 10)
    assert [(row.kind, row.body) for row in rows] == [*items, (1, b"after")]
    assert [row.seq for row in rows] == sorted(row.seq for row in rows)
    assert spool.records == count + 1
    await spool.close()


async def test_a_second_process_on_the_same_spool_cannot_open_it_while_the_first_holds_it(tmp_path):
    """Two edges pointed at one state directory would ship each other's records under one spool id: the second
    is refused ("database is locked") while the first holds the file; once it closed, a new one takes over."""
    import sqlite3

    first = Spool(tmp_path / "s.sqlite3", max_bytes=1 << 20)
    await first.open()
    first.reserve(3, "record")
    await first.write_records([(0, b"one")])
    second = Spool(tmp_path / "s.sqlite3", max_bytes=1 << 20)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await second.open()
    await first.close()
    third = Spool(tmp_path / "s.sqlite3", max_bytes=1 << 20)
    await third.open()
    assert [row.body for row in await third.head_records()] == [b"one"]
    await third.close()


async def test_an_empty_outbox_is_answered_without_a_transaction(tmp_path):
    """The shipper asks for payload messages before each batch of records; with none (nearly always) the answer
    cost a transaction on the writer thread and two thread hops. The outbox's count is kept across a restart."""
    spool = Spool(tmp_path / "s.sqlite3", max_bytes=1000, registry=CollectorRegistry())
    await spool.open()
    commits = spool.commits
    assert await spool.head() == [] and spool.commits == commits
    spool.reserve(10, "record")
    await spool.write_records([(0, b"r" * 10)])  # records are not outbox messages
    commits = spool.commits
    assert await spool.head() == [] and spool.commits == commits
    await spool.append("s", "p1", b"p" * 10)
    assert [m.msg_id for m in await spool.head()] == ["p1"]
    await spool.close()

    reopened = Spool(tmp_path / "s.sqlite3", max_bytes=1000, registry=CollectorRegistry())
    await reopened.open()
    assert reopened.messages == 1
    waiting = await reopened.head()
    assert [m.msg_id for m in waiting] == ["p1"]
    await reopened.remove([m.seq for m in waiting])
    commits = reopened.commits
    assert await reopened.head() == [] and reopened.commits == commits
    assert (reopened.records, reopened.messages) == (1, 0)
    await reopened.close()

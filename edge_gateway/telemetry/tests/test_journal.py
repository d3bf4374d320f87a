"""The telemetry journal: a record is durable once `write` returned, through a SIGKILL, and spooled exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from edge_gateway.telemetry.journal import MIN_BYTES, Journal
from edge_gateway.telemetry.shipper import TelemetryShipper
from edge_gateway.telemetry.spool import Spool
from shared_sdk.messages import AnalyticsRecord

ROOT = Path(__file__).resolve().parents[3]


def _bodies(journal: Journal, committed: int | None = None) -> list[bytes]:
    return [body for _, body in journal.unreleased(committed)]


def test_records_wrap_around_the_ring_and_come_back_in_order(tmp_path):
    journal = Journal(tmp_path / "j", size=MIN_BYTES + 64)
    journal.open()
    body = b"x" * 1000
    written = []
    for lap in range(300):  # ~300 KB through a 64 KB ring: several laps, records never split at its end
        item = body + str(lap).encode()
        assert journal.append(lap % 3, item)
        written.append(item)
        if lap % 10 == 9:
            assert _bodies(journal) == written
            journal.release(journal.head)
            written = []
    assert journal.head > 4 * journal.capacity
    journal.close()


def test_a_full_ring_refuses_until_the_spool_released_space(tmp_path):
    journal = Journal(tmp_path / "j", size=MIN_BYTES + 64)
    journal.open()
    written = []
    while journal.append(0, body := b"y" * 4000 + str(len(written)).encode()):
        written.append(body)
    while journal.append(0, body := str(len(written)).encode()):  # the last bytes of the ring, small records
        written.append(body)
    assert len(written) > 16
    assert _bodies(journal) == written  # nothing was overwritten while unreleased
    journal.release(journal.head)
    assert journal.append(0, b"z")
    assert not journal.append(0, b"w" * journal.capacity)  # a record larger than a quarter ring never goes in


def test_a_torn_record_ends_the_replay(tmp_path):
    path = tmp_path / "j"
    journal = Journal(path, size=MIN_BYTES + 64)
    journal.open()
    for i in range(3):
        journal.append(1, f"record-{i}".encode())
    journal.close()
    raw = bytearray(path.read_bytes())
    second = raw.index(b"record-1")
    raw[second] ^= 0xFF  # its CRC no longer matches
    path.write_bytes(bytes(raw))
    reopened = Journal(path, size=MIN_BYTES + 64)
    reopened.open()
    assert _bodies(reopened) == [b"record-0"]
    assert reopened.append(1, b"after")  # written where the torn record was
    assert _bodies(reopened) == [b"record-0", b"after"]


def test_a_second_journal_on_the_same_file_is_refused_while_the_first_is_open(tmp_path):
    first = Journal(tmp_path / "j", size=MIN_BYTES)
    first.open()
    second = Journal(tmp_path / "j", size=MIN_BYTES)
    with pytest.raises(BlockingIOError):
        second.open()
    first.close()
    second.open()  # the lock went with the first one's close
    second.close()


def test_an_empty_journal_takes_the_configured_size_and_a_holding_one_keeps_its_own(tmp_path):
    path = tmp_path / "j"
    small = Journal(path, size=MIN_BYTES + 64)
    small.open()
    small.append(0, b"kept")
    small.close()
    larger = Journal(path, size=4 * MIN_BYTES)
    larger.open()
    assert larger.size == MIN_BYTES + 64 and _bodies(larger) == [b"kept"]
    larger.release(larger.head)
    larger.close()
    again = Journal(path, size=4 * MIN_BYTES)
    again.open()
    assert again.size == 4 * MIN_BYTES and _bodies(again) == []


def _record(i: int) -> AnalyticsRecord:
    return AnalyticsRecord(request_id=f"req-{i}", model="mock-gpt", status_code=200, cost=Decimal("0.01"))


async def _stored_request_ids(state: Path) -> list[str]:
    """Open the spool and journal as an edge starting up would, and list the request ids the spool holds."""
    spool = Spool(state / "spool.sqlite3", max_bytes=64 * 1024 * 1024)
    await spool.open()
    shipper = TelemetryShipper(namespace="ns", edge_id="e", spool=spool, journal=Journal(state / "j", size=MIN_BYTES))
    await shipper.open_journal()
    rows = await spool.head_records(10_000)
    await shipper.close_journal()
    await spool.close()
    return [msgspec.msgpack.decode(row.body, type=AnalyticsRecord).request_id for row in rows]


_WRITER = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from edge_gateway.telemetry.journal import Journal, MIN_BYTES
    from edge_gateway.telemetry.shipper import TelemetryShipper
    from edge_gateway.telemetry.spool import Spool
    from shared_sdk.messages import AnalyticsRecord

    async def main(state, first, count, release):
        spool = Spool(state / "spool.sqlite3", max_bytes=64 * 1024 * 1024)
        await spool.open()
        journal = Journal(state / "j", size=MIN_BYTES)
        shipper = TelemetryShipper(namespace="ns", edge_id="e", spool=spool, journal=journal)
        await shipper.open_journal()
        if not release:  # the spool commits, then the edge dies before the ring space is released
            journal.release = lambda position: None
        for i in range(first, first + count):
            record = AnalyticsRecord(request_id=f"req-{i}", model="mock-gpt", status_code=200, cost="0.01")
            future = shipper.write(record)
            assert future.done()  # durable at once: the response would end here
        if not release:
            shipper._drain_journal()
            await asyncio.gather(*shipper._drains)
        print("written", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "release"))
    """
)


def _write_and_die(state: Path, first: int, count: int, release: bool) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _WRITER, str(state), str(first), str(count), "release" if release else "keep"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "written"


async def test_records_written_just_before_a_sigkill_are_spooled_at_the_next_start(tmp_path):
    _write_and_die(tmp_path, 0, 50, release=True)  # killed inside the drain window: the spool never saw them
    assert await _stored_request_ids(tmp_path) == [f"req-{i}" for i in range(50)]


async def test_a_kill_between_the_spool_commit_and_the_release_spools_nothing_twice(tmp_path):
    _write_and_die(tmp_path, 0, 40, release=False)
    _write_and_die(tmp_path, 40, 10, release=True)
    assert await _stored_request_ids(tmp_path) == [f"req-{i}" for i in range(50)]


async def test_an_idle_spool_journals_and_a_busy_one_takes_the_record_into_its_transaction(tmp_path):
    """Idle: a record is durable at once (nothing for the response to wait for) and reaches SQLite later. With a
    transaction under way (a slow disk here), a record waits for the next commit, as responses under load do."""
    spool = Spool(tmp_path / "spool.sqlite3", max_bytes=64 * 1024 * 1024)
    await spool.open()
    shipper = TelemetryShipper(
        namespace="ns", edge_id="e", spool=spool, journal=Journal(tmp_path / "j", size=MIN_BYTES)
    )
    await shipper.open_journal()
    futures = [shipper.write(_record(i)) for i in range(5)]
    assert all(future.done() and future.exception() is None for future in futures)
    assert (spool.records, shipper.unspooled) == (0, 5)  # not in SQLite yet: in the journal (/ready counts both)
    await asyncio.sleep(0.1)
    assert (spool.records, shipper.unspooled, shipper.unspooled_bytes) == (5, 0, 0)  # the group reached the spool
    gate = threading.Event()
    held = asyncio.ensure_future(spool._submit(lambda db: gate.wait(30)))
    await asyncio.sleep(0.05)  # the held operation is under way
    waiting = shipper.write(_record(5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    gate.set()
    await asyncio.wait_for(waiting, 10)
    await held
    assert spool.records == 6
    await shipper.close_journal()
    await spool.close()


async def test_an_unusable_journal_leaves_the_spool_round_trip(tmp_path, caplog):
    (tmp_path / "j").mkdir()  # not a file that can be mapped
    spool = Spool(tmp_path / "spool.sqlite3", max_bytes=64 * 1024 * 1024)
    await spool.open()
    shipper = TelemetryShipper(
        namespace="ns", edge_id="e", spool=spool, journal=Journal(tmp_path / "j", size=MIN_BYTES)
    )
    await shipper.open_journal()
    assert shipper.journal is None and "not usable" in caplog.text
    future = shipper.write(_record(0))
    assert not future.done()
    await asyncio.wait_for(future, 10)
    assert spool.records == 1
    await shipper.close_journal()
    await spool.close()


async def test_journaled_records_a_full_spool_cannot_take_at_start_up_stay_in_the_journal(tmp_path, caplog):
    _write_and_die(tmp_path, 0, 20, release=True)
    spool = Spool(tmp_path / "spool.sqlite3", max_bytes=1024)  # smaller than what the journal holds
    await spool.open()
    journal = Journal(tmp_path / "j", size=MIN_BYTES)
    shipper = TelemetryShipper(namespace="ns", edge_id="e", spool=spool, journal=journal)
    await shipper.open_journal()
    assert "20 journaled records found at start-up not spooled" in caplog.text
    assert spool.records == 0 and spool.pending_bytes == 0
    assert len(journal.unreleased()) == 20  # still there for a start with room
    future = shipper.write(_record(99))
    assert not future.done()  # no journaling meanwhile: the spool's own round trip
    await asyncio.wait_for(future, 10)
    await shipper.close_journal()
    await spool.close()
    stored = await _stored_request_ids(tmp_path)  # a start with room: the 20 after the one spooled meanwhile
    assert stored == ["req-99"] + [f"req-{i}" for i in range(20)]


async def test_ready_and_heartbeats_count_what_only_the_journal_holds(tmp_path):
    """An operator reading `/ready` (or the control plane a heartbeat) sees every record the edge still owes."""
    from edge_gateway.sync.service import EdgeSyncService

    class _Store:
        current = None

    service = EdgeSyncService(store=_Store(), namespace="ns", edge_id="e", nats_url=None, state_dir=str(tmp_path))
    await service.start()
    try:
        service.shipper.write(_record(0))
        status, beat = service.status(), service.heartbeat()
        assert service.spool.records == 0
        assert (status["spool_records"], beat.spool_records) == (1, 1)
        assert status["spool_bytes"] == beat.spool_bytes > 0
        await asyncio.sleep(0.1)
        assert (service.spool.records, service.status()["spool_records"]) == (1, 1)  # now in the spool: once
    finally:
        await service.stop()


def test_a_journal_size_past_its_bound_is_a_configuration_error(tmp_path):
    """The ring is preallocated whole: a typo of a few zeros must not fill the disk."""
    from edge_gateway.sync.service import EdgeSyncService
    from fjordgate.env import ConfigError

    with pytest.raises(ConfigError, match="EDGE_JOURNAL_BYTES"):
        EdgeSyncService(
            store=object(),
            namespace="ns",
            edge_id="e",
            nats_url=None,
            state_dir=str(tmp_path),
            environ={"EDGE_JOURNAL_BYTES": str(64 << 30)},
        )
    assert not (tmp_path / "spool.journal").exists()

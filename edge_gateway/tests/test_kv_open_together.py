"""Every worker of an edge opens the same KV files (`kv.sqlite3`, `responses.sqlite3`) when it starts: opened at the
same moment on a new file, both must open.

Why: turning a new SQLite file to WAL from two connections at once can be refused at once ("database is locked",
no busy wait where waiting could deadlock); a two-worker edge started on a fresh state directory lost a worker
to it (seen in `bench_yardstick.py`: "only workers ['0'] applied")."""

from __future__ import annotations

import asyncio

from edge_gateway.kv import EdgeKV

PAIRS = 150


def test_two_openers_of_a_new_kv_file_at_the_same_moment_both_open_and_share_it(tmp_path):
    async def pair(index: int) -> None:
        path = str(tmp_path / f"edge-{index}" / "kv.sqlite3")
        first, second = EdgeKV(path), EdgeKV(path)
        await asyncio.gather(first.open(), second.open())
        try:
            await first.for_plugin("p").write("k", b"v")
            await first.flush()
            assert await second.for_plugin("p").read("k") == b"v"
        finally:
            await asyncio.gather(first.close(), second.close())

    async def every_pair() -> None:
        for index in range(PAIRS):  # without the retry about one pair in eight failed
            await pair(index)

    asyncio.run(every_pair())

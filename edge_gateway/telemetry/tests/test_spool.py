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

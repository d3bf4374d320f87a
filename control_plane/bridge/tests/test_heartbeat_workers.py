"""A heartbeat's worker field: a multi-worker edge's index below its worker count, or nothing."""

from __future__ import annotations

import pytest

from control_plane.bridge.heartbeats import check_worker
from shared_sdk.sync_protocol import EdgeHeartbeat


@pytest.mark.parametrize(("worker", "workers"), [("", 1), ("0", 2), ("1", 2), ("255", 256)])
def test_a_worker_index_below_the_count_is_accepted(worker, workers):
    check_worker(EdgeHeartbeat(edge_id="e", namespace="n", worker=worker, workers=workers))


@pytest.mark.parametrize(
    ("worker", "workers"), [("2", 2), ("-1", 2), ("1a", 2), ("0x1", 2), ("1", 1), ("0", 257), ("0001", 2), (" 1", 2)]
)
def test_anything_else_is_refused(worker, workers):
    with pytest.raises(ValueError, match="not a worker index"):
        check_worker(EdgeHeartbeat(edge_id="e", namespace="n", worker=worker, workers=workers))

"""Lease holders of multi-worker edges: a worker leases as `<edge>/<worker>`, and only its own edge may say so."""

from __future__ import annotations

import pytest

from shared_sdk.sync_protocol import EdgeHeartbeat, RateLimitReport, decode, encode, lease_holder, lease_holder_of


def test_an_edge_may_hold_leases_as_itself_or_as_one_of_its_workers():
    assert lease_holder("edge-a") == "edge-a"
    assert lease_holder("edge-a", "1") == "edge-a/1"
    assert lease_holder_of("edge-a", "edge-a") == "edge-a"
    assert lease_holder_of("edge-a", "edge-a/1") == "edge-a/1"


@pytest.mark.parametrize(
    "body",
    ["edge-b", "edge-b/0", "edge-a/", "edge-a/x", "edge-a/1/2", "edge-a/1234", "edge-ab/0", "edge/0"],
)
def test_an_edge_cannot_name_another_edge_or_a_malformed_worker(body):
    with pytest.raises(ValueError, match="body names edge"):
        lease_holder_of("edge-a", body)


def test_a_subject_edge_id_outside_the_edge_id_rule_is_refused():
    with pytest.raises(ValueError, match="edge id"):
        lease_holder_of("edge-a/1", "edge-a/1")  # not a possible edge id: it could pose as edge-a's worker 1


def test_new_worker_fields_decode_both_ways():
    old_bridge_view = decode(encode(EdgeHeartbeat(edge_id="e", namespace="n", worker="1", workers=2)), EdgeHeartbeat)
    assert (old_bridge_view.worker, old_bridge_view.workers) == ("1", 2)
    old_edge = encode(EdgeHeartbeat(edge_id="e", namespace="n"))
    assert b"worker" not in old_edge, "a single-process edge sends what it always sent"
    assert (decode(old_edge, EdgeHeartbeat).worker, decode(old_edge, EdgeHeartbeat).workers) == ("", 1)
    report = decode(encode(RateLimitReport(edge_id="e", window_start=60.0, worker="0")), RateLimitReport)
    assert report.worker == "0"

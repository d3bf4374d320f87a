"""The production topology: a three-node NATS cluster. Edges and the bridge know every node; SIGKILL the node
leading the telemetry stream mid-traffic and every answered request is still stored exactly once."""

from __future__ import annotations

import pytest

from shared_sdk.sync_protocol import UP_STREAM

from .cluster import config_version, seed_namespace, wait_until
from .test_processes_telemetry import Traffic, _assert_exactly_once

pytestmark = [pytest.mark.timeout(300)]


def test_stream_leader_killed_mid_traffic_loses_and_duplicates_nothing(cluster_of_three, nats_cluster):
    cluster = cluster_of_three
    seed = seed_namespace("ns-c", cluster.mock_url)
    cluster.start_bridge()
    edge = cluster.start_edge(cluster.add_edge("c1", "ns-c"))
    wait_until(lambda: edge.ready().get("version", 0) >= config_version("ns-c"), message="edge config")
    info = nats_cluster.stream_info(UP_STREAM)
    assert info.config.num_replicas == 3
    leader = nats_cluster.node_named(info.cluster.leader)

    with Traffic(edge, seed.key, "nodekill") as traffic:
        traffic.wait_for(30)
        nats_cluster.kill_node(leader)
        traffic.wait_for(len(traffic.answered) + 60, timeout=60)  # served and shipped through the survivors

    survivors = nats_cluster.stream_info(UP_STREAM)
    assert survivors.cluster.leader != info.cluster.leader
    assert not traffic.failed, f"{len(traffic.failed)} requests failed while a NATS node was down"
    _assert_exactly_once(traffic.answered, traffic.failed)

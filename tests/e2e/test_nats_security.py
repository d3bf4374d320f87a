"""deploy/nats/nats.conf on a real nats-server: an edge reads only its namespace and publishes only as itself,
and the real edge sync service (with NATS_USER / NATS_PASSWORD) works within those permissions, including the
rate-limit counts it shares with its namespace's other edges (and only with them)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import nats
import pytest
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import KeyValueConfig, StorageType

from control_plane.bridge.runner import ensure_up_stream
from edge_gateway.ratelimit import RateLimiter
from edge_gateway.sync.service import EdgeSyncService
from shared_sdk.snapshot import ConfigSnapshot
from shared_sdk.sync_protocol import (
    KEY_MANIFEST,
    UP_STREAM,
    RateLimitReport,
    SnapshotManifest,
    chunk_key,
    config_bucket,
    decode,
    encode,
    snapshot_canonical,
    snapshot_split,
    up_subject,
)

from .nats_server import NatsServer
from .test_snapshot_chunks import RecordingStore
from .test_telemetry_pipeline import records, wait_for

pytestmark = [pytest.mark.timeout(60)]

CONF = Path(__file__).resolve().parents[2] / "deploy" / "nats" / "nats.conf"
PASSWORDS = {
    "FJ_NATS_BRIDGE_PASSWORD": "bridge-secret",
    "FJ_NATS_EDGE_DEMO_1_PASSWORD": "edge-1-secret",
    "FJ_NATS_EDGE_DEMO_2_PASSWORD": "edge-2-secret",
    "NATS_SERVER_NAME": "nats-1",
}


@pytest.fixture
def secured(tmp_path):
    """nats-server with deploy/nats/nats.conf as shipped, its JetStream store moved to a temp dir and its cluster
    block left out (one node: the permissions are the same on every node)."""
    text = CONF.read_text()
    assert 'store_dir: "/var/lib/nats/jetstream"' in text
    text, clusters = re.subn(r"\ncluster \{.*?\n\}\n", "\n", text, flags=re.DOTALL)
    assert clusters == 1
    conf = tmp_path / "nats.conf"
    conf.write_text(text.replace("/var/lib/nats/jetstream", str(tmp_path / "js")))
    server = NatsServer(config=str(conf), env=PASSWORDS).start()
    yield server
    server.cleanup()


async def _publish_config(js, namespace: str) -> SnapshotManifest:
    kv = await js.create_key_value(KeyValueConfig(bucket=config_bucket(namespace), history=1, storage=StorageType.FILE))
    manifest, chunks = snapshot_split(snapshot_canonical(ConfigSnapshot(namespace=namespace, version=3)))
    for digest, data in chunks.items():
        await kv.put(chunk_key(digest), data)
    await kv.put(KEY_MANIFEST, encode(manifest))
    return manifest


async def _permission_errors(url: str, user: str, password: str, inbox: str):
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await nats.connect(url, user=user, password=password, inbox_prefix=inbox, error_cb=on_error)
    return nc, errors


async def test_edge_user_reads_only_its_namespace_and_publishes_only_as_itself(secured, tmp_path):
    bridge = await nats.connect(secured.url, user="bridge", password="bridge-secret")
    js = bridge.jetstream(timeout=5)
    await ensure_up_stream(js)
    demo = await _publish_config(js, "demo")
    await _publish_config(js, "other")

    # wrong password: refused
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            secured.url, user="edge-demo-1", password="nope", max_reconnect_attempts=0, allow_reconnect=False
        )

    # the real edge sync service, authenticated from its environment, applies its namespace's config and ships
    store = RecordingStore()
    environ = {
        "NATS_USER": "edge-demo-1",
        "NATS_PASSWORD": "edge-1-secret",
        "EDGE_HEARTBEAT_S": "0.2",
        "EDGE_RATELIMIT_SHARE_S": "0.05",
    }
    limiter = RateLimiter()
    edge = EdgeSyncService(
        store=store,
        namespace="demo",
        edge_id="edge-demo-1",
        nats_url=secured.url,
        state_dir=str(tmp_path / "edge"),
        limiter=limiter,
        environ=environ,
    )
    peer, _ = await _permission_errors(secured.url, "edge-demo-2", "edge-2-secret", "_INBOX.edge-demo-2")
    from_edge: list[RateLimitReport] = []

    async def collect(message) -> None:
        if message.subject == up_subject("demo", "edge-demo-1", "ratelimit"):
            from_edge.append(decode(message.data, RateLimitReport))

    await peer.subscribe("fj.up.demo.*.ratelimit", cb=collect)
    await peer.flush()
    await edge.start()
    try:
        await wait_for(lambda: asyncio.sleep(0, bool(store.applied)), timeout=15)
        assert store.applied[-1].checksum == demo.checksum
        await edge.shipper.submit_batch(records(0, 5))
        assert await edge.shipper.drained(15)  # durable in the journal or the spool, then acknowledged by JetStream
        assert edge.spool.records == 0
        assert (await js.stream_info(UP_STREAM)).state.messages == 1, "the edge's telemetry batch is in FJ_UP"
        # rate-limit counts: the edge reads its namespace peer's report and its peer reads the edge's
        await wait_for(lambda: asyncio.sleep(0, edge.ratelimit.attached), timeout=15)
        now = time.time()
        report = RateLimitReport(edge_id="edge-demo-2", window_start=now - now % 60, counts={"app:1:rpm": 4})
        await peer.publish(up_subject("demo", "edge-demo-2", "ratelimit"), encode(report))
        await wait_for(lambda: asyncio.sleep(0, edge.ratelimit.reports_received == 1), timeout=15)
        assert limiter.check("app:1:rpm", 4) > 0, "the peer's 4 requests count here"
        limiter.add("app:1:rpm", 1)
        await wait_for(lambda: asyncio.sleep(0, bool(from_edge)), timeout=15)
        assert (from_edge[0].edge_id, from_edge[0].counts) == ("edge-demo-1", {"app:1:rpm": 1})
    finally:
        await edge.stop(drain_timeout_s=0.1)
        await peer.close()

    nc, errors = await _permission_errors(secured.url, "edge-demo-1", "edge-1-secret", "_INBOX.edge-demo-1")
    try:
        ejs = nc.jetstream(timeout=1.5)
        own = await ejs.key_value(config_bucket("demo"))
        assert decode((await own.get(KEY_MANIFEST)).value, SnapshotManifest).namespace == "demo"
        # another namespace's bucket: the JetStream API request is not even allowed
        with pytest.raises((NatsTimeout, nats.js.errors.Error, nats.errors.Error)):
            other = await ejs.key_value(config_bucket("other"))
            await other.get(KEY_MANIFEST)
        # publishing as another edge (or into another namespace) gets no ack and stores nothing
        before = (await js.stream_info(UP_STREAM)).state.messages
        for subject in ("fj.up.demo.edge-demo-2.telemetry", "fj.up.other.edge-demo-1.telemetry"):
            with pytest.raises((NatsTimeout, nats.errors.Error)):
                await ejs.publish(subject, b"forged")
        assert (await js.stream_info(UP_STREAM)).state.messages == before
        # subscribing to another namespace's down subjects, to every inbox, to every edge's up subjects, to
        # another namespace's rate-limit counts or to its own namespace's telemetry is refused by the server
        # (reported asynchronously as a permissions violation naming the subject)
        refused = ("fj.down.other.>", "_INBOX.>", "fj.up.>", "fj.up.other.*.ratelimit", "fj.up.demo.*.telemetry")
        for subject in refused:
            await nc.subscribe(subject)
        await nc.flush()

        def reported(subject: str) -> bool:
            return any("permissions violation" in e.lower() and f'"{subject.lower()}"' in e.lower() for e in errors)

        await asyncio.sleep(1.0)
        assert all(reported(s) for s in refused), errors
        # while its own namespace's down subject and rate-limit counts are allowed
        for subject in ("fj.down.demo.reload", "fj.up.demo.*.ratelimit"):
            await nc.subscribe(subject)
        await nc.flush()
        await asyncio.sleep(0.2)
        assert not reported("fj.down.demo.reload") and not reported("fj.up.demo.*.ratelimit"), errors
    finally:
        await nc.close()
        await bridge.close()

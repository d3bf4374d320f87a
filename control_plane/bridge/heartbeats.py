"""The edge registry's input: announce/heartbeat messages, handled by one bridge of the queue group each.

The edge id and namespace recorded are those of the subject (`identity.py`), not of the body. The workers of a
multi-worker edge all beat on their edge's subject, each naming its index (`worker`): one edge, N workers.
"""

from __future__ import annotations

import logging
import re

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from control_plane.edges.services import edge_record_heartbeat
from control_plane.sync.namespaces import namespace_is_valid
from shared_sdk.sync_protocol import BRIDGE_QUEUE_GROUP, EdgeHeartbeat, decode

from .db import run_db
from .identity import up_identity

log = logging.getLogger("fjordgate.bridge")

_WORKER = re.compile(r"[0-9]{1,3}")
MAX_WORKERS = 256
"""As the edge's EDGE_WORKERS bound: a worker index is scoped under the subject's edge, one edge row per edge."""


def check_worker(beat: EdgeHeartbeat) -> None:
    """ValueError unless the beat is a single edge's ("") or names a worker index below its worker count."""
    if beat.worker and not (_WORKER.fullmatch(beat.worker) and int(beat.worker) < beat.workers <= MAX_WORKERS):
        raise ValueError(f"worker {beat.worker!r} of {beat.workers} is not a worker index")


class HeartbeatReceiver:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self.received = 0

    async def start(self) -> None:
        await self._nc.subscribe("fj.up.*.*.heartbeat", queue=BRIDGE_QUEUE_GROUP, cb=self._handle)

    async def _handle(self, message: Msg) -> None:
        try:
            # who is beating: the subject NATS let this edge publish on, never what the body claims
            identity = up_identity(message.subject, "heartbeat")
            if not namespace_is_valid(identity.namespace):
                raise ValueError(f"namespace {identity.namespace!r} breaks the namespace rule")
            beat = decode(message.data, EdgeHeartbeat)
            check_worker(beat)
        except (msgspec.DecodeError, ValueError) as exc:
            log.warning("ignoring heartbeat on %s: %s", message.subject, exc)
            return
        if (beat.namespace, beat.edge_id) != (identity.namespace, identity.edge_id):
            log.warning(
                "heartbeat on %s names %r/%r; recorded as its subject", message.subject, beat.namespace, beat.edge_id
            )
        await run_db(
            edge_record_heartbeat,
            edge_id=identity.edge_id,
            namespace=identity.namespace,
            version=beat.version,
            checksum=beat.checksum,
            started_at=beat.started_at,
            uptime_s=beat.uptime_s,
            in_flight=beat.in_flight,
            build=beat.build,
            host=beat.host,
            port=beat.port,
            config_source=beat.config_source,
            nats_connected=beat.nats_connected,
            spool_records=beat.spool_records,
            spool_bytes=beat.spool_bytes,
            worker=beat.worker,
            workers=beat.workers,
            plugins_not_loaded=beat.plugins_not_loaded,
            plugins_not_loaded_total=beat.plugins_not_loaded_total,
        )
        self.received += 1

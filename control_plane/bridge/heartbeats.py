"""The edge registry's input: announce/heartbeat messages, handled by one bridge of the queue group each."""

from __future__ import annotations

import logging

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from control_plane.edges.services import edge_record_heartbeat
from shared_sdk.sync_protocol import BRIDGE_QUEUE_GROUP, EdgeHeartbeat, decode, up_subject

from .db import run_db

log = logging.getLogger("fjordgate.bridge")


class HeartbeatReceiver:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self.received = 0

    async def start(self) -> None:
        await self._nc.subscribe("fj.up.*.*.heartbeat", queue=BRIDGE_QUEUE_GROUP, cb=self._handle)

    async def _handle(self, message: Msg) -> None:
        try:
            beat = decode(message.data, EdgeHeartbeat)
            if message.subject != up_subject(beat.namespace, beat.edge_id, "heartbeat"):
                # NATS permissions pin each edge to its own subject; the body must agree with it
                raise ValueError(f"body names {beat.namespace!r}/{beat.edge_id!r}")
        except (msgspec.DecodeError, ValueError) as exc:
            log.warning("ignoring heartbeat on %s: %s", message.subject, exc)
            return
        await run_db(
            edge_record_heartbeat,
            edge_id=beat.edge_id,
            namespace=beat.namespace,
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
        )
        self.received += 1

"""Reload requests made in the admin or the API, forwarded to edges as `fj.down.<ns>.reload` (leader duty)."""

from __future__ import annotations

from nats.aio.client import Client

from control_plane.edges.selectors import edge_reloads_unpublished
from control_plane.edges.services import edge_reload_mark_published
from shared_sdk.sync_protocol import ReloadRequest, down_subject, encode

from .db import run_db


async def publish_reloads(nc: Client) -> int:
    requests = await run_db(edge_reloads_unpublished)
    for request in requests:
        message = ReloadRequest(request_id=str(request.pk), edge_id=request.edge_id)
        await nc.publish(down_subject(request.namespace, "reload"), encode(message))
    if requests:
        await nc.flush()
        await run_db(edge_reload_mark_published, request_ids=[request.pk for request in requests])
    return len(requests)

"""NATS users of the embedded server: one all-powerful user for the control plane, one confined user per edge.

`deploy/nats/nats.conf` gives each edge a user that may publish only as itself (`fj.up.<ns>.<edge>.>`), read
only its namespace's config bucket and down subjects, and receive only on its own inbox prefix; the bridge's
trust in the subject as the sender's identity rests on that. `fjordgate up` used to hand every edge the
control plane's user, so a local edge could speak for any other edge or namespace (issue 13). The embedded
server now gets the same per-edge permissions (`edge_permissions`, checked against nats.conf by the tests), and
each edge process gets only its own user name and password.

Edge passwords are derived from the stack's NATS secret (HMAC per edge id), so they need no storage of their own,
stay stable across restarts, and no edge can compute another's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass

__all__ = ["NatsEdgeUser", "authorization_block", "edge_nats_password", "edge_permissions"]

GLOBAL_TOKEN = "_"
"""The global namespace "" in subjects and bucket names (as shared_sdk.sync_protocol.GLOBAL_TOKEN)."""


@dataclass(frozen=True)
class NatsEdgeUser:
    edge_id: str
    namespace: str
    password: str


def edge_nats_password(secret: str, edge_id: str) -> str:
    return hmac.new(secret.encode(), f"fjordgate-edge:{edge_id}".encode(), hashlib.sha256).hexdigest()


def edge_permissions(namespace: str, edge_id: str) -> tuple[list[str], list[str]]:
    """(publish, subscribe) allow-lists of an edge: exactly those of an edge block in deploy/nats/nats.conf."""
    ns = namespace or GLOBAL_TOKEN
    bucket = f"KV_FJ_CFG_{ns}"
    publish = [
        f"fj.up.{ns}.{edge_id}.>",
        "$JS.API.INFO",
        f"$JS.API.STREAM.INFO.{bucket}",
        f"$JS.API.STREAM.MSG.GET.{bucket}",
        f"$JS.API.DIRECT.GET.{bucket}.>",
        f"$JS.API.CONSUMER.CREATE.{bucket}",
        f"$JS.API.CONSUMER.CREATE.{bucket}.>",
        f"$JS.API.CONSUMER.INFO.{bucket}.>",
        f"$JS.API.CONSUMER.DELETE.{bucket}.>",
        f"$JS.FC.{bucket}.>",
    ]
    subscribe = [f"fj.down.{ns}.>", "fj.down._all.>", f"_INBOX.{edge_id}.>", f"fj.up.{ns}.*.ratelimit"]
    return publish, subscribe


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid quoted string in NATS config (no $ substitution)


def authorization_block(user: str, password: str, edges: list[NatsEdgeUser]) -> str:
    """`authorization { users = [...] }`: `user` may do everything (bridge, web, workers), each edge its part.

    The global account keeps the JetStream data of stacks created before per-edge users existed.
    """
    lines = ["authorization {", "  users = [", f"    {{ user: {_q(user)}, password: {_q(password)} }}"]
    for edge in edges:
        publish, subscribe = edge_permissions(edge.namespace, edge.edge_id)
        lines.append(
            f"    {{ user: {_q(edge.edge_id)}, password: {_q(edge.password)}, permissions: {{ "
            f"publish: [{', '.join(map(_q, publish))}], subscribe: [{', '.join(map(_q, subscribe))}] }} }}"
        )
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"

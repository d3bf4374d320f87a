"""The wire protocol between the bridge (control plane) and the edges over NATS JetStream.

Both tiers import this module and nothing of each other, so the subjects, bucket names and message shapes
are defined exactly once. `docs/sync.md` describes the same thing for operators.

Why these shapes:
- Config goes down through one JetStream KV bucket per namespace (`FJ_CFG_<ns>`), so NATS permissions can give
  an edge read access to its own namespace's bucket and nothing else, and an edge that starts later still finds
  the last value. The snapshot itself is split into content-addressed chunks (`chunk.<sha256>`) listed by a small
  manifest (`ctl.manifest`): no single message approaches NATS's 1 MB limit however many apps and keys a
  namespace holds, and a change to one credential produces one new chunk, so edges fetch only what changed.
- Telemetry goes up in batches on a JetStream stream with `Nats-Msg-Id` = the batch id (server-side dedup of
  replays within the window) and every record carries its own `record_id`, which is unique in PostgreSQL, so a
  re-delivery after any crash is harmless: each record is stored exactly once.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import msgspec

from .messages import AnalyticsRecord, BudgetUsage, Direction, EdgePayload, Event, ProxyLog
from .snapshot import (
    AppConfig,
    BudgetConfig,
    ConfigSnapshot,
    CredentialConfig,
    LLMConfig,
    ModelPriceConfig,
    PluginConfig,
    UserConfig,
    snapshot_checksum,
)

__all__ = [
    "BRIDGE_QUEUE_GROUP",
    "CHUNK_TARGET_BYTES",
    "EDGE_PAYLOAD_MAX_BYTES",
    "EDGE_PAYLOAD_TOPIC",
    "KEY_BUDGETS",
    "KEY_MANIFEST",
    "MAX_PLUGINS_NOT_LOADED",
    "MAX_PLUGINS_NOT_LOADED_TOTAL",
    "PAYLOAD_CONSUMER",
    "TELEMETRY_CONSUMER",
    "UP_STREAM",
    "UP_STREAM_SUBJECTS",
    "BudgetSpend",
    "BudgetUpdate",
    "EdgeHeartbeat",
    "EdgePayloadRequest",
    "EventEnvelope",
    "PayloadEnvelope",
    "LeaseAsk",
    "LeaseGrant",
    "LeaseReply",
    "LeaseRequest",
    "RateAsk",
    "RateGrant",
    "RateLimitReport",
    "ReloadRequest",
    "SnapshotManifest",
    "TelemetryBatch",
    "TelemetryBatchRaw",
    "bound_plugins_not_loaded",
    "bound_plugins_not_loaded_total",
    "chunk_key",
    "config_bucket",
    "decode",
    "down_subject",
    "edge_payload_event",
    "edge_payload_problem",
    "encode",
    "manifest_digests",
    "namespace_token",
    "namespace_up_subject",
    "snapshot_assemble",
    "snapshot_canonical",
    "snapshot_split",
    "up_subject",
]

# ---------------------------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------------------------

UP_STREAM = "FJ_UP"
"""JetStream stream holding everything edges send up durably: telemetry batches and plugin payloads."""
UP_STREAM_SUBJECTS = ["fj.up.*.*.telemetry", "fj.up.*.*.payload"]
TELEMETRY_CONSUMER = "fj-bridge-telemetry"
"""Durable pull consumer shared by every bridge: each batch goes to exactly one of them."""
PAYLOAD_CONSUMER = "fj-bridge-payload"
BRIDGE_QUEUE_GROUP = "fj-bridge"
"""Queue group of the bridges' core-NATS subscriptions (heartbeats, events up): one bridge handles each message."""
KEY_MANIFEST = "ctl.manifest"
KEY_BUDGETS = "ctl.budgets"
CHUNK_TARGET_BYTES = 256 * 1024
CHUNK_MAX_BYTES = 900 * 1024

_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
GLOBAL_TOKEN = "_"
"""The subject/bucket token of the global namespace ""; namespaces cannot start with "_", so it never collides."""
BROADCAST_TOKEN = "_all"
"""Down subjects every edge of every namespace subscribes to (global events)."""


def namespace_token(namespace: str) -> str:
    """The namespace as it appears in subjects and bucket names; raises ValueError for names NATS cannot carry."""
    if namespace == "":
        return GLOBAL_TOKEN
    if not _NAMESPACE.match(namespace):
        raise ValueError(f"namespace {namespace!r} must be 1-63 letters, digits, '-' or '_' and not start with '_'")
    return namespace


def _edge_token(edge_id: str) -> str:
    if not _NAMESPACE.match(edge_id):
        raise ValueError(f"edge id {edge_id!r} must be 1-63 letters, digits, '-' or '_' and not start with '_'")
    return edge_id


def config_bucket(namespace: str) -> str:
    return f"FJ_CFG_{namespace_token(namespace)}"


def chunk_key(digest: str) -> str:
    return f"chunk.{digest}"


def up_subject(namespace: str, edge_id: str, kind: str) -> str:
    """`fj.up.<ns>.<edge>.<kind>`, kind in telemetry | payload | heartbeat | event | ratelimit."""
    return f"fj.up.{namespace_token(namespace)}.{_edge_token(edge_id)}.{kind}"


def namespace_up_subject(namespace: str, kind: str) -> str:
    """`fj.up.<ns>.*.<kind>`: what every edge of the namespace sends of that kind (edges subscribe to
    `ratelimit` this way, to count each other's requests; deploy/nats/nats.conf allows it per namespace)."""
    return f"fj.up.{namespace_token(namespace)}.*.{kind}"


def down_subject(namespace: str | None, kind: str) -> str:
    """`fj.down.<ns>.<kind>` (kind in reload | budgets | event); `namespace=None` means every namespace."""
    token = BROADCAST_TOKEN if namespace is None else namespace_token(namespace)
    return f"fj.down.{token}.{kind}"


# ---------------------------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------------------------


class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True):
    pass


class SnapshotManifest(_Wire):
    """`ctl.manifest` in the namespace's bucket: the version, its checksum and the chunks that make it up."""

    namespace: str
    version: int
    checksum: str
    generated_at: float = 0.0
    published_at: float = 0.0
    schema_version: int = 1
    sections: dict[str, list[str]] = {}
    """Section name (a list field of ConfigSnapshot) -> SHA-256 of each chunk, in shard order."""
    total_bytes: int = 0


class BudgetSpend(_Wire):
    budget_id: int
    spent: Decimal
    """Every edge's ingested spend in the current period."""
    period_start: float
    by_edge: dict[str, Decimal] = {}
    """The part of `spent` each edge contributed: an edge enforces `spent + max(0, own - by_edge[own id])`, i.e.
    the control plane's figure plus its own spend the control plane has not seen yet."""


class BudgetUpdate(_Wire):
    """`ctl.budgets` (kept in the bucket) and `fj.down.<ns>.budgets` (pushed): the control plane's spend figures."""

    namespace: str
    generated_at: float
    budgets: list[BudgetSpend] = []


class ReloadRequest(_Wire):
    """`fj.down.<ns>.reload`: re-read the manifest and re-apply; `edge_id=""` means every edge of the namespace."""

    request_id: str = msgspec.field(default_factory=lambda: uuid.uuid4().hex)
    edge_id: str = ""
    requested_at: float = msgspec.field(default_factory=time.time)


class EdgeHeartbeat(_Wire):
    """`fj.up.<ns>.<edge>.heartbeat`: announce (first) and heartbeat (every EDGE_HEARTBEAT_S seconds)."""

    edge_id: str
    namespace: str
    version: int = 0
    checksum: str = ""
    started_at: float = 0.0
    uptime_s: float = 0.0
    in_flight: int = 0
    build: str = ""
    host: str = ""
    port: int = 0
    config_source: str = "none"
    """Where the applied config came from: nats | disk (last snapshot, NATS unreachable) | file | none."""
    nats_connected: bool = True
    spool_records: int = 0
    spool_bytes: int = 0
    sent_at: float = msgspec.field(default_factory=time.time)
    worker: str = ""
    """The sending worker's index ("0", "1", ...) when the edge runs `EDGE_WORKERS` > 1 processes, else "". The
    edge id stays the edge's: the control plane keeps one edge and counts its workers. New fields have defaults,
    so an older bridge ignores them and an older edge's heartbeat decodes as a single worker."""
    workers: int = 1
    """How many workers the edge's supervisor runs."""
    plugins_not_loaded: dict[str, str] = {}
    """Plugins of the applied snapshot (and `slug@llm` instances) the edge could not load -> why, as a fixed phrase
    (`initialize raised`, `config refused`, ...), never the error's message, which may quote the plugin's config.
    At most MAX_PLUGINS_NOT_LOADED entries (`bound_plugins_not_loaded`); the bridge bounds it again (the body is
    the edge's, not to be trusted)."""
    plugins_not_loaded_total: int = 0
    """How many the edge could not load in all, `plugins_not_loaded` listing at most MAX_PLUGINS_NOT_LOADED of them,
    so the registry can say "and N more". 0 (left out) from an edge older than the field: as many as listed. The
    bridge takes it through `bound_plugins_not_loaded_total`."""


MAX_PLUGINS_NOT_LOADED = 64
"""Entries of `EdgeHeartbeat.plugins_not_loaded` sent and stored: enough for an operator to act on, bounded against
a hostile edge (10,000 slugs, a megabyte of reason)."""
PLUGIN_KEY_CHARS = 127
"""A plugin key is a slug (63) or `slug@llm slug` (127)."""
PLUGIN_REASON_CHARS = 64


MAX_PLUGINS_NOT_LOADED_TOTAL = 1_000_000
"""The largest `plugins_not_loaded_total` believed: a larger count is stored as this."""


def bound_plugins_not_loaded_total(total: int, listed: int) -> int:
    """`EdgeHeartbeat.plugins_not_loaded_total` as stored, given the `listed` entries kept: never fewer than those
    (an older edge sends 0, a hostile one a negative count), never more than MAX_PLUGINS_NOT_LOADED_TOTAL."""
    return min(max(total, listed), MAX_PLUGINS_NOT_LOADED_TOTAL)


def bound_plugins_not_loaded(failures: dict[str, str]) -> dict[str, str]:
    """`failures` as sent and stored: the first MAX_PLUGINS_NOT_LOADED keys in order, keys and reasons cut short."""
    keys = sorted(failures)[:MAX_PLUGINS_NOT_LOADED]
    return {key[:PLUGIN_KEY_CHARS]: str(failures[key])[:PLUGIN_REASON_CHARS] for key in keys}


class RateLimitReport(_Wire):
    """`fj.up.<ns>.<edge>.ratelimit` (core NATS, read by the namespace's other edges, not stored): the
    increments this edge's rate-limit windows took since its previous report, sent every
    EDGE_RATELIMIT_SHARE_S seconds when there were any.

    Increments rather than totals, so a receiver simply adds them (a lost report costs that report's counts,
    nothing more) and never has to know which totals it already saw.
    """

    edge_id: str
    window_start: float
    """Start (epoch seconds, a multiple of 60) of the fixed minute the counts belong to."""
    counts: dict[str, int] = {}
    """Window key (`app:<id>:rpm`, `user:<app>:<user>:tpm`, ...) -> requests or tokens counted."""
    worker: str = ""
    """The sending worker of a multi-worker edge: its sibling workers count the report, only its sender skips
    it."""


class LeaseAsk(_Wire):
    """One budget in a `LeaseRequest`: what the edge uses of it and how much more it needs."""

    budget_id: int
    period_start: float
    """The period the edge's figures belong to (the snapshot's); the control plane answers for the current one."""
    used: Decimal = Decimal("0")
    """Settled spend plus reservations in flight at this edge in that period."""
    need: Decimal = Decimal("0")
    """What waiting requests lack (0: a background top-up or a renewal)."""
    unit: Decimal = Decimal("0")
    """One request's upper-bound cost here: near the end of a budget only whole requests are granted."""
    fresh: bool = False
    """The edge holds nothing for this budget and period (it just started): it adopts the ledger's `used`."""


class RateAsk(_Wire):
    """One rate limit in a `LeaseRequest`: requests (rpm) or tokens (tpm) this edge wants to admit in one fixed
    minute."""

    key: str
    """The limit's key (`app:<id>:rpm`, `user:<app>:<user>:rpm`, `app:<id>:tpm`, `user:<app>:<user>:tpm`)."""
    window_start: int
    """Start of the fixed minute (epoch seconds, a multiple of 60)."""
    limit: int
    need: int = 0
    unit: int = 0
    """One request's amount (1 for rpm, its token bound for tpm): near the end only whole requests are granted."""
    used: int = 0
    """What the edge has used of its grant of this minute (requests, or tokens taken and not given back): the
    ledger tops up what the edge still holds rather than adding a share per ask."""


class RateGrant(_Wire):
    key: str
    window_start: int
    granted: int = 0
    """Cumulative for this edge in that minute."""


_WORKER = re.compile(r"^[0-9]{1,3}$")


def lease_holder(edge_id: str, worker: str = "") -> str:
    """Who holds leases in the ledger: the edge id, or `<edge id>/<worker>` for a worker of a multi-worker edge
    (each worker spends from its own leases). `/` cannot occur in an edge id, so no edge can name a holder that
    belongs to another edge."""
    return f"{edge_id}/{worker}" if worker else edge_id


def lease_holder_of(subject_edge_id: str, body_edge_id: str) -> str:
    """The ledger holder a lease request from `subject_edge_id` (the authenticated sender) may act as: its own id
    or one of its workers (`<id>/<index>`); ValueError for anything else, such as another edge's id."""
    _edge_token(subject_edge_id)
    if body_edge_id == subject_edge_id:
        return body_edge_id
    base, slash, worker = body_edge_id.partition("/")
    if slash and base == subject_edge_id and _WORKER.match(worker):
        return body_edge_id
    raise ValueError(f"body names edge {body_edge_id!r}, subject {subject_edge_id!r}")


class LeaseRequest(_Wire):
    """`fj.up.<ns>.<edge>.lease` (core NATS request/reply, bridges' queue group): ask for and renew leases."""

    edge_id: str
    """The lease holder: the subject's edge id, or `<edge id>/<worker>` (`lease_holder`)."""
    asks: list[LeaseAsk] = []
    rates: list[RateAsk] = []


class LeaseGrant(_Wire):
    """The ledger's answer for one budget: `granted` is cumulative for the period; headroom = granted - used."""

    budget_id: int
    period_start: float
    granted: Decimal = Decimal("0")
    used: Decimal = Decimal("0")
    ttl_s: float = 0.0
    """The lease is live for this long from the request's sending; renew before, or stop spending it."""
    leased: bool = True
    """False: the budget is not (or no longer) a blocking budget of this namespace; the edge does not lease it."""


class LeaseReply(_Wire):
    grants: list[LeaseGrant] = []
    rates: list[RateGrant] = []
    error: str = ""


class TelemetryBatch(_Wire):
    """`fj.up.<ns>.<edge>.telemetry` on stream FJ_UP, header `Nats-Msg-Id: <batch_id>`."""

    batch_id: str
    edge_id: str
    namespace: str
    created_at: float
    analytics: list[AnalyticsRecord] = []
    budget_usage: list[BudgetUsage] = []
    proxy_logs: list[ProxyLog] = []
    proxy_logs_from_analytics: bool = False
    """The edge logs no bodies and ships no proxy logs: the control plane stores one per analytics record, built from
    it (a proxy log without bodies repeats its request's analytics record but for the method and path, which the
    record carries). A proxy log the batch does carry for a record is kept as it is."""
    budget_usage_from_analytics: bool = False
    """The edge ships no BudgetUsage for the requests it accounts: the control plane stores one per analytics record
    with an app, built from it (the usage record repeats the request's ids, tokens, cost and currency, all of which
    the analytics record carries; it was half of every request's records to build, journal, spool and publish). A
    usage record the batch does carry for a record (spooled by an older edge) is kept as it is."""


class TelemetryBatchRaw(_Wire):
    """The same wire shape as `TelemetryBatch`, built from records already msgpack-encoded (the edge's spool
    keeps each record encoded; re-decoding them only to encode them again would cost the edge CPU)."""

    batch_id: str
    edge_id: str
    namespace: str
    created_at: float
    analytics: list[msgspec.Raw] = []
    budget_usage: list[msgspec.Raw] = []
    proxy_logs: list[msgspec.Raw] = []
    proxy_logs_from_analytics: bool = False
    budget_usage_from_analytics: bool = False


class EventEnvelope(_Wire):
    """Plugin events between the tiers (core NATS, at most once, like the local bus):

    - up: `fj.up.<ns>.<edge>.event` (edge -> control plane; the bridges' queue group takes each once);
    - down: `fj.down.<ns>.event` (control plane -> that namespace's edges) or `fj.down._all.event` (global).

    The receiver re-publishes `event` on its local bus as `Direction.LOCAL`, so it is never sent back across.
    """

    event: Event
    origin: str = ""
    """`edge:<edge id>` or `control:<bridge id>`: who put it on the wire (for logs and loop checks)."""


EDGE_PAYLOAD_MAX_BYTES = 1024 * 1024
"""The largest payload a gateway plugin may send up (1 MiB; NATS `max_payload` is 2 MB in deploy/nats)."""

EDGE_PAYLOAD_TOPIC = "fjordgate.edge_payload"
"""The low-level form of `ctx.services.gateway.send_payload`: an UP event on this topic (see `edge_payload_event`)
is taken off the event path by the edge and persisted in its spool until the control plane acknowledged it, then
the bridge calls the studio plugin's `accept_edge_payload`. Kept for plugins written before `send_payload`."""


def edge_payload_problem(payload: object, metadata: object = None, correlation_id: object = "") -> str | None:
    """Why an edge payload cannot be sent (for the error the plugin gets), or `None` when it can. The control plane
    checks what an edge sends with it again (`control_plane/bridge/payloads.py`): an edge is not trusted either.

    Text holding a NUL character is refused: the control plane stores the correlation id and the metadata as
    PostgreSQL text, which cannot hold one."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        return f"an edge payload is bytes, got {type(payload).__name__}"
    if len(payload) > EDGE_PAYLOAD_MAX_BYTES:
        return f"edge payloads are limited to {EDGE_PAYLOAD_MAX_BYTES} bytes (1 MiB), got {len(payload)}"
    if metadata is not None and not (
        isinstance(metadata, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        return "edge payload metadata is a dict of str to str"
    if not isinstance(correlation_id, str):
        return f"an edge payload's correlation id is a str, got {type(correlation_id).__name__}"
    if "\x00" in correlation_id:
        return "its correlation_id holds a NUL character"
    if metadata and any("\x00" in key or "\x00" in value for key, value in metadata.items()):
        return "its metadata holds a NUL character"
    return None


class EdgePayloadRequest(_Wire):
    """The body of an `EDGE_PAYLOAD_TOPIC` event."""

    payload: bytes
    correlation_id: str = ""
    metadata: dict[str, str] = {}


def edge_payload_event(payload: bytes, *, correlation_id: str = "", metadata: dict[str, str] | None = None) -> Event:
    """The event a gateway plugin publishes (`ctx.services.events.publish_event(...)`) to send `payload` (at most
    1 MiB) up to its studio half; the edge fills in the plugin slug, edge id, namespace and timestamps."""
    request = EdgePayloadRequest(payload=bytes(payload), correlation_id=correlation_id, metadata=dict(metadata or {}))
    return Event(topic=EDGE_PAYLOAD_TOPIC, payload=encode(request), direction=Direction.UP)


class PayloadEnvelope(_Wire):
    """`fj.up.<ns>.<edge>.payload` on stream FJ_UP, header `Nats-Msg-Id: <record_id>`: one plugin payload."""

    record_id: str
    payload: EdgePayload


_msgpack_encoder = msgspec.msgpack.Encoder()
_decoders: dict[type, msgspec.msgpack.Decoder[Any]] = {}


def encode(message: msgspec.Struct) -> bytes:
    """Every NATS message body is msgpack (bytes fields such as proxy-log bodies travel without base64)."""
    return _msgpack_encoder.encode(message)


def decode(data: bytes, kind: type[msgspec.Struct]) -> Any:
    """Decode and type-check; raises msgspec.ValidationError naming the bad field."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.msgpack.Decoder(kind)
    return decoder.decode(data)


# ---------------------------------------------------------------------------------------------------------------
# Snapshot split and assembly
# ---------------------------------------------------------------------------------------------------------------

_SECTIONS: dict[str, tuple[type, Callable[[Any], Any]]] = {
    "llms": (LLMConfig, lambda item: item.id),
    "apps": (AppConfig, lambda item: item.id),
    "credentials": (CredentialConfig, lambda item: item.key_hash),
    "users": (UserConfig, lambda item: item.id),
    "plugins": (PluginConfig, lambda item: item.slug),
    "prices": (ModelPriceConfig, lambda item: (item.vendor, item.model)),
    "budgets": (BudgetConfig, lambda item: item.id),
}
_json = msgspec.json.Encoder(order="sorted")
_section_decoders: dict[str, msgspec.json.Decoder[Any]] = {
    name: msgspec.json.Decoder(list[kind])  # type: ignore[valid-type]
    for name, (kind, _) in _SECTIONS.items()
}


def snapshot_canonical(snapshot: ConfigSnapshot) -> ConfigSnapshot:
    """Every list sorted by its natural key and the checksum recomputed: the form the bridge publishes.

    Sorting makes the checksum independent of query order, and lets an edge reassemble shards into exactly the
    snapshot that was hashed.
    """
    changes = {name: sorted(getattr(snapshot, name), key=key) for name, (_, key) in _SECTIONS.items()}
    canonical = msgspec.structs.replace(snapshot, checksum="", **changes)
    return msgspec.structs.replace(canonical, checksum=snapshot_checksum(canonical))


def _shard_of(key: Any, shards: int) -> int:
    return zlib.crc32(repr(key).encode()) % shards if shards > 1 else 0


def _split_section(items: list[Any], key: Callable[[Any], Any], target: int) -> list[bytes]:
    if not items:
        return []
    whole = len(_json.encode(items))
    shards = 1
    while whole / shards > target:
        shards *= 2  # powers of two: the shard of an item changes only when the section doubles or halves
    while True:
        buckets: list[list[Any]] = [[] for _ in range(shards)]
        for item in items:
            buckets[_shard_of(key(item), shards)].append(item)
        chunks = [_json.encode(bucket) for bucket in buckets if bucket]
        if max(len(chunk) for chunk in chunks) <= CHUNK_MAX_BYTES or shards >= len(items):
            return chunks
        shards *= 2


def snapshot_split(
    snapshot: ConfigSnapshot, *, target_bytes: int = CHUNK_TARGET_BYTES
) -> tuple[SnapshotManifest, dict[str, bytes]]:
    """Split a canonical snapshot into a manifest and content-addressed chunks (`sha256 hex -> bytes`).

    Items are sharded by a stable hash of their key, so an unchanged shard keeps its digest from one version
    to the next and an edge that already holds it does not fetch it again.
    """
    chunks: dict[str, bytes] = {}
    sections: dict[str, list[str]] = {}
    for name, (_, key) in _SECTIONS.items():
        digests = []
        for chunk in _split_section(list(getattr(snapshot, name)), key, target_bytes):
            digest = hashlib.sha256(chunk).hexdigest()
            chunks[digest] = chunk
            digests.append(digest)
        sections[name] = digests
    manifest = SnapshotManifest(
        namespace=snapshot.namespace,
        version=snapshot.version,
        checksum=snapshot.checksum,
        generated_at=snapshot.generated_at,
        published_at=time.time(),
        schema_version=snapshot.schema_version,
        sections=sections,
        total_bytes=sum(len(chunk) for chunk in chunks.values()),
    )
    return manifest, chunks


def manifest_digests(manifest: SnapshotManifest) -> Iterable[str]:
    for digests in manifest.sections.values():
        yield from digests


def snapshot_assemble(manifest: SnapshotManifest, chunks: dict[str, bytes]) -> ConfigSnapshot:
    """Rebuild the snapshot a manifest describes and verify its checksum (ValueError when it does not match)."""
    fields: dict[str, list[Any]] = {}
    for name, (_, key) in _SECTIONS.items():
        items: list[Any] = []
        for digest in manifest.sections.get(name, []):
            data = chunks[digest]
            if hashlib.sha256(data).hexdigest() != digest:
                raise ValueError(f"chunk {digest} of section {name} is corrupt")
            items.extend(_section_decoders[name].decode(data))
        fields[name] = sorted(items, key=key)
    snapshot = ConfigSnapshot(
        namespace=manifest.namespace,
        version=manifest.version,
        checksum=manifest.checksum,
        generated_at=manifest.generated_at,
        schema_version=manifest.schema_version,
        **fields,
    )
    if snapshot_checksum(snapshot) != manifest.checksum:
        raise ValueError(f"snapshot {manifest.namespace!r} v{manifest.version} does not match its checksum")
    return snapshot

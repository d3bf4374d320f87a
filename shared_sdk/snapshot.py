"""The configuration snapshot: what the control plane sends down to the edges of one namespace.

This module is the contract between the two tiers. The control plane builds a `ConfigSnapshot` from its
database (global objects plus the namespace's own), the bridge publishes it over NATS, and an edge applies
it atomically and keeps the last one on disk. Neither side imports the other; both import this.

Why it lives in the SDK: the edge and the control plane may not import each other (an import-linter
contract), and plugins see parts of it (`App`, `LLM`) through the gateway services.

Rules every field follows:
- Money is `decimal.Decimal` (msgspec encodes it as a string), never a float.
- Times are Unix seconds as floats (UTC); `None` means "not set".
- Vendor API keys never travel in clear: `LLMConfig.api_key_encrypted` is a Fernet token made with the
  namespace's edge secret (`FJORDGATE_EDGE_SECRET`), decrypted only at the edge.
- Client credentials travel only as `sha256(key).hexdigest()`; the edge hashes what a client presents and
  looks it up in memory.
- `checksum` is the SHA-256 of the canonical encoding of the snapshot with `checksum` set to "" (see
  `snapshot_checksum`), so an edge and the control plane can tell whether they hold the same config.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any, Literal

import msgspec

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "SNAPSHOT_SCHEMA_VERSION",
    "AppConfig",
    "BudgetConfig",
    "ConfigSnapshot",
    "CredentialConfig",
    "FallbackTarget",
    "LLMConfig",
    "ModelPriceConfig",
    "PluginBinding",
    "PluginConfig",
    "UserConfig",
    "decode_snapshot",
    "encode_snapshot",
    "hash_credential",
    "snapshot_checksum",
]

SNAPSHOT_SCHEMA_VERSION = 1
DEFAULT_MAX_OUTPUT_TOKENS = 4096
"""A model's output limit when its price names none: what a budget reserves for a request without max_tokens."""

FailurePolicy = Literal["open", "closed"]
Vendor = Literal[
    "openai",
    "anthropic",
    "mock",
    "ollama",
    "vllm",
    "azure",
    "google",
    "vertex",
    "bedrock",
    "mistral",
    "groq",
    "together",
    "deepseek",
    "openrouter",
]
BudgetScope = Literal["app", "user", "group", "llm"]
BudgetPeriod = Literal["daily", "weekly", "monthly", "anniversary_monthly"]
BudgetAction = Literal["block", "notify"]


class FallbackTarget(msgspec.Struct, kw_only=True, frozen=True):
    """One step of an LLM's ordered fallback list: another LLM, optionally with a model override."""

    llm_slug: str
    model: str | None = None


class PluginBinding(msgspec.Struct, kw_only=True, frozen=True):
    """A plugin in an LLM's chain; `config` is the plugin's config with the LLM's override deep-merged over it."""

    plugin_slug: str
    order: int
    config: dict[str, Any] = {}


class PluginConfig(msgspec.Struct, kw_only=True, frozen=True):
    """A plugin the edge must load. Exactly one of `entry_point`, `import_path` and `command` is set; the edge
    checks it against its own allow-list (`shared_sdk.host.PluginSources`) before loading anything.

    `global_order` is set for plugins that run on every request of the namespace (before any LLM chain);
    `None` means the plugin runs only where an LLM's chain names it.
    """

    slug: str
    name: str
    version: str = ""
    entry_point: str | None = None
    """Name of an entry point in group `fjordgate.plugins` (an installed distribution)."""
    import_path: str | None = None
    isolated: bool = False
    """Run the entry point or import path in a process of its own (`python -m shared_sdk.isolated.run`)."""
    command: list[str] | None = None
    config: dict[str, Any] = {}
    failure_policy: FailurePolicy = "open"
    timeout_ms: int = 30_000
    namespace: str = ""
    global_order: int | None = None
    capabilities: list[str] = []
    extra_scopes: list[str] = []
    """Service scopes the operator grants beyond the plugin's manifest (see `shared_sdk.scopes`)."""
    config_hash: str = ""


class LLMConfig(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    slug: str
    name: str
    vendor: str
    api_base: str
    api_key_encrypted: str = ""
    default_model: str = ""
    allowed_models: list[str] = []
    """Regular expressions (full match); empty means every model is allowed."""
    privacy_score: int = 0
    active: bool = True
    namespace: str = ""
    fallbacks: list[FallbackTarget] = []
    plugin_chain: list[PluginBinding] = []
    max_retries: int = 2
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 60.0
    idle_stream_timeout_s: float = 60.0
    max_response_bytes: int = 32 * 1024 * 1024
    """Bound on a vendor reply the edge reads (decoded; a stream's total too); larger ones end in a 502."""
    extra_headers: dict[str, str] = {}
    metadata: dict[str, Any] = {}
    weight: int = 1
    """This deployment's share among the LLMs serving the same model at the same priority (1..1000)."""
    priority: int = 0
    """Lower is tried first: deployments of a higher priority take traffic only while no better one is healthy."""
    breaker_cooldown_s: float | None = None
    """How long the edge sends this LLM nothing after its circuit breaker opened (None: the edge's default)."""
    granted_group_ids: list[int] = []
    """Groups whose catalogue offers this LLM. When not empty, a non-admin user (the key's user, else the app's
    owner) must belong to one of them; an LLM in no catalogue is governed by the app link alone."""


class AppConfig(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    name: str
    owner_id: int | None = None
    active: bool = True
    approved: bool = True
    namespace: str = ""
    llm_ids: list[int] = []
    tool_ids: list[int] = []
    datasource_ids: list[int] = []
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    rate_limit_rpm: int | None = None
    rate_limit_tpm: int | None = None
    user_rate_limit_rpm: int | None = None
    user_rate_limit_tpm: int | None = None
    allowed_ips: list[str] = []
    """CIDRs or addresses; empty means any client address."""


class CredentialConfig(msgspec.Struct, kw_only=True, frozen=True):
    key_hash: str
    app_id: int
    credential_id: int
    prefix: str = ""
    user_id: int | None = None
    expires_at: float | None = None
    active: bool = True


class UserConfig(msgspec.Struct, kw_only=True, frozen=True):
    id: int
    email: str = ""
    name: str = ""
    is_admin: bool = False
    active: bool = True
    """False once the user is deactivated: the edge refuses their keys and their apps' keys (401)."""
    group_ids: list[int] = []
    metadata: dict[str, Any] = {}


class ModelPriceConfig(msgspec.Struct, kw_only=True, frozen=True):
    """Prices per one million tokens. `model` matches the upstream model name exactly."""

    vendor: str
    model: str
    prompt_per_million: Decimal = Decimal("0")
    completion_per_million: Decimal = Decimal("0")
    cache_read_per_million: Decimal = Decimal("0")
    cache_write_per_million: Decimal = Decimal("0")
    currency: str = "USD"
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS
    """The model's output limit: the completion tokens a budget reserves for a request without `max_tokens`."""
    max_input_tokens: int | msgspec.UnsetType = msgspec.UNSET
    """The model's input limit (its context window), UNSET (falsy) when not known: it caps the input tokens a budget
    and a tpm lease reserve, and it is what an input with media by reference (an image URL, a file id) reserves.
    UNSET is left out of the encoding: a snapshot whose prices name no input limit is the same bytes an edge of an
    earlier release hashes (its checksum would not match a field it does not know)."""


class BudgetConfig(msgspec.Struct, kw_only=True, frozen=True):
    """A spending limit and, as last known by the control plane, what has been spent in the current period."""

    id: int
    scope: BudgetScope
    target_id: int
    limit: Decimal
    currency: str = "USD"
    period: BudgetPeriod = "monthly"
    action: BudgetAction = "block"
    period_start: float = 0.0
    period_end: float = 0.0
    spent: Decimal = Decimal("0")
    on_unreachable: Literal["fail_closed", "fail_open"] = "fail_closed"
    """What an edge does once its lease is spent and the control plane cannot be asked for more."""


class ConfigSnapshot(msgspec.Struct, kw_only=True, frozen=True):
    namespace: str
    version: int
    checksum: str = ""
    generated_at: float = 0.0
    schema_version: int = SNAPSHOT_SCHEMA_VERSION
    llms: list[LLMConfig] = []
    apps: list[AppConfig] = []
    credentials: list[CredentialConfig] = []
    users: list[UserConfig] = []
    plugins: list[PluginConfig] = []
    prices: list[ModelPriceConfig] = []
    budgets: list[BudgetConfig] = []


_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(ConfigSnapshot)


def encode_snapshot(snapshot: ConfigSnapshot) -> bytes:
    """Canonical JSON (sorted keys), the form that is hashed, published and stored on disk."""
    return _encoder.encode(snapshot)


def decode_snapshot(data: bytes) -> ConfigSnapshot:
    """Decode and type-check a snapshot; raises `msgspec.ValidationError` naming the bad field."""
    return _decoder.decode(data)


def snapshot_checksum(snapshot: ConfigSnapshot) -> str:
    """SHA-256 over the canonical encoding with the checksum field blanked.

    The encoding is taken after one decode, so the checksum depends on the values, not on how the builder
    spelled them: a struct built with `20` in a float field encodes as `20`, but every receiver decodes it to
    `20.0`; hashing the decoded form makes the sender's and the receivers' checksums agree.
    """
    blank = encode_snapshot(msgspec.structs.replace(snapshot, checksum=""))
    return hashlib.sha256(encode_snapshot(decode_snapshot(blank))).hexdigest()


def hash_credential(key: str) -> str:
    """How a client key is stored and looked up on both tiers: keys are 256-bit random, so a plain SHA-256 suffices."""
    return hashlib.sha256(key.encode()).hexdigest()

"""The config snapshot contract: canonical encoding, checksum, credential hashing."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from shared_sdk.snapshot import (
    ConfigSnapshot,
    LLMConfig,
    ModelPriceConfig,
    decode_snapshot,
    encode_snapshot,
    hash_credential,
    snapshot_checksum,
)


def _snapshot(**llm) -> ConfigSnapshot:
    return ConfigSnapshot(
        namespace="eu",
        version=7,
        llms=[LLMConfig(id=1, slug="m", name="M", vendor="mock", api_base="http://m", **llm)],
        prices=[ModelPriceConfig(vendor="mock", model="m", prompt_per_million=Decimal("2.50"))],
    )


def test_checksum_survives_the_trip_to_an_edge():
    """The control plane signs what it built; the edge checks what it decoded. An int given for a float field
    (20 vs 20.0) must not make the edge reject a genuine snapshot as tampered."""
    built = _snapshot(first_byte_timeout_s=20)
    signed = msgspec.structs.replace(built, checksum=snapshot_checksum(built))
    received = decode_snapshot(encode_snapshot(signed))
    assert snapshot_checksum(received) == received.checksum == signed.checksum


def test_checksum_changes_with_content_and_ignores_the_checksum_field():
    a, b = _snapshot(), _snapshot(default_model="other")
    assert snapshot_checksum(a) != snapshot_checksum(b)
    assert snapshot_checksum(msgspec.structs.replace(a, checksum="anything")) == snapshot_checksum(a)


def test_money_travels_as_exact_decimal_strings():
    data = encode_snapshot(_snapshot())
    assert b'"prompt_per_million":"2.50"' in data
    assert decode_snapshot(data).prices[0].prompt_per_million == Decimal("2.50")


def test_a_malformed_snapshot_names_the_bad_field():
    with pytest.raises(msgspec.ValidationError, match=r"\$\.version"):
        decode_snapshot(b'{"namespace": "eu", "version": "seven"}')


def test_credentials_are_hashed_consistently():
    assert hash_credential("fg-key") == hash_credential("fg-key") != hash_credential("fg-key2")
    assert len(hash_credential("fg-key")) == 64

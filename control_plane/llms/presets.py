"""Vendor presets on the control plane's side: an LLM saved without a base URL gets its vendor's, and the
settings a vendor needs (Bedrock's region and key pair, Vertex AI's region, project and service-account key, Azure's
deployments) are checked before it is saved. Errors never quote a key.

The table itself is `shared_sdk.vendors` (the edge reads the same rows); this module only applies it, from the
one write path both the admin form and the API use (`services._apply`), so neither can skip it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.core.exceptions import ValidationError

from shared_sdk.vendors import VENDORS, preset_base_url, valid_region

from .models import LLM

__all__ = ["endpoint_help", "vendor_settings_check"]

_BEDROCK_URL = re.compile(r"https://bedrock-runtime\.[a-z0-9-]+\.amazonaws\.com")
_VERTEX_URL = re.compile(r"https://[a-z0-9-]+-aiplatform\.googleapis\.com")
_GCP_PROJECT = re.compile(r"([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
"""A Google Cloud project id (6-30 lowercase letters, digits, hyphens), optionally domain-scoped (`example.com:p`)."""
_SERVICE_ACCOUNT_FIELDS = ("client_email", "private_key", "token_uri")


def endpoint_help() -> str:
    """The preset endpoints, for the admin form's help text."""
    rows = [f"{p.label}: {p.base_url}" for p in VENDORS.values() if p.base_url]
    return "Leave empty for the vendor's preset. " + "; ".join(rows) + ". Azure OpenAI and Mock need one."


def vendor_settings_check(llm: LLM, api_key: str | None) -> None:
    """Fill `api_endpoint` from the preset when empty; refuse settings the vendor cannot work with.

    `api_key` is the new clear key when one is being set (checked for its shape), else None.
    """
    metadata: dict[str, Any] = llm.metadata if isinstance(llm.metadata, dict) else {}
    if llm.vendor == "bedrock":
        _bedrock_check(metadata, api_key)
    elif llm.vendor == "vertex":
        _vertex_check(metadata, api_key)
    elif llm.vendor == "azure":
        _azure_check(metadata)
    if not llm.vendor or (llm.api_endpoint and not _stale_preset(llm.api_endpoint, llm.vendor, metadata)):
        return
    url = preset_base_url(llm.vendor, metadata.get("region"))
    if not url:
        raise ValidationError(
            {"api_endpoint": f"Vendor {llm.vendor!r} has no preset endpoint: give the base URL of your deployment."}
        )
    llm.api_endpoint = url


def _stale_preset(url: str, vendor: str, metadata: dict[str, Any]) -> bool:
    """Whether `url` is a preset left over from another vendor or another Bedrock region (switching the vendor or
    the region in the form then moves the endpoint along; an endpoint the admin typed is never replaced)."""
    current = preset_base_url(vendor, metadata.get("region"))
    if url.rstrip("/") == current.rstrip("/") and current:
        return False
    if _BEDROCK_URL.fullmatch(url.rstrip("/")) or _VERTEX_URL.fullmatch(url.rstrip("/")):
        return True
    return any(url.rstrip("/") == p.base_url for p in VENDORS.values() if p.base_url and "{" not in p.base_url)


def _bedrock_check(metadata: dict[str, Any], api_key: str | None) -> None:
    if not valid_region(metadata.get("region")):
        raise ValidationError(
            {"metadata": 'AWS Bedrock needs metadata.region, an AWS region such as "us-east-1" (SigV4 signs for it).'}
        )
    if api_key:  # an empty key (removal) is allowed: the LLM is then unavailable at the edge
        key_id, sep, secret = api_key.partition(":")
        if not sep or not key_id.isalnum() or not secret:
            raise ValidationError(
                {"api_key": "AWS Bedrock takes the key as ACCESS_KEY_ID:SECRET_ACCESS_KEY (both stored encrypted)."}
            )


def _vertex_check(metadata: dict[str, Any], api_key: str | None) -> None:
    if not valid_region(metadata.get("region"), "vertex"):
        raise ValidationError(
            {"metadata": 'Google Vertex AI needs metadata.region, a Google Cloud region such as "us-central1".'}
        )
    project = metadata.get("project")
    if not isinstance(project, str) or not _GCP_PROJECT.fullmatch(project):
        raise ValidationError(
            {"metadata": 'Google Vertex AI needs metadata.project, the Google Cloud project id such as "my-project".'}
        )
    if api_key:  # an empty key (removal) is allowed: the LLM is then unavailable at the edge
        problem = _service_account_problem(api_key)
        if problem:
            raise ValidationError({"api_key": f"Google Vertex AI takes a service-account JSON key: {problem}."})


def _service_account_problem(key: str) -> str:
    """What is wrong with a service-account JSON key ("" when nothing); never quotes the key."""
    try:
        info = json.loads(key)
    except ValueError:
        return "the key is not JSON"
    if not isinstance(info, dict):
        return "the key is not a JSON object"
    missing = [name for name in _SERVICE_ACCOUNT_FIELDS if not isinstance(info.get(name), str) or not info[name]]
    if missing:
        return f"{', '.join(missing)} missing"
    if info.get("type", "service_account") != "service_account":
        return 'its "type" is not "service_account"'
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", info["token_uri"]):
        return "token_uri is not an http(s) URL"
    try:
        load_pem_private_key(info["private_key"].encode(), password=None)
    except (ValueError, TypeError):
        return "private_key is not an unencrypted PEM private key"
    return ""


def _azure_check(metadata: dict[str, Any]) -> None:
    deployments = metadata.get("deployments")
    if deployments is not None and not (
        isinstance(deployments, dict)
        and all(isinstance(k, str) and isinstance(v, str) and v for k, v in deployments.items())
    ):
        raise ValidationError(
            {"metadata": "metadata.deployments maps model names to Azure deployment names (strings)."}
        )
    version = metadata.get("api_version")
    if version is not None and not (isinstance(version, str) and version.strip()):
        raise ValidationError(
            {"metadata": 'metadata.api_version must be an Azure OpenAI API version, e.g. "2024-10-21".'}
        )

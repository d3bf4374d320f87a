"""OAuth2 access tokens for Vertex AI LLMs, from the LLM's service-account JSON key, cached per LLM and key.

Why this shape: Google's token exchange (`google.oauth2.service_account.Credentials.refresh`, a signed JWT posted to
the key's `token_uri`) is blocking HTTP, which must never run on the edge's event loop. So a refresh runs in a
thread (`asyncio.to_thread`), one at a time per LLM (concurrent requests share it), and the token is kept until
shortly before it expires. A token nearing its end (`REFRESH_AHEAD_S`) is refreshed in the background while requests
keep using it: a request waits for a refresh only when no valid token exists (the LLM's first request, a key
rotation, a token the vendor refused, or a background refresh that kept failing until the token ran out).

Google's library is used rather than a hand-made JWT: it is Google's own, well kept, and knows the key format.
The key (the private key inside the JSON) never leaves this module's credentials object and is never logged; errors
name the LLM and the token endpoint's error code only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import orjson
import urllib3
from google.auth.exceptions import GoogleAuthError, RefreshError, TransportError
from google.auth.transport.urllib3 import Request as GoogleRequest
from google.oauth2 import service_account

from ..errors import UpstreamError
from .base import UpstreamSpec

__all__ = ["REFRESH_AHEAD_S", "SCOPE", "ServiceAccountTokens"]

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_AHEAD_S = 300.0
"""A token with less than this left is refreshed in the background (Google's tokens live an hour)."""
USABLE_MARGIN_S = 10.0
"""A token with less than this left is not sent any more (it could expire on the way)."""
_TIMEOUT = urllib3.Timeout(connect=5.0, read=10.0)


@dataclass(slots=True)
class _Entry:
    key: str
    credentials: service_account.Credentials | None = None
    token: str = ""
    expires_at: float = 0.0
    refreshing: asyncio.Task[None] | None = field(default=None, repr=False)


def _auth_failed(spec: UpstreamSpec, why: str, *, retryable: bool = False) -> UpstreamError:
    return UpstreamError(
        502, f"Vertex AI credentials of LLM {spec.slug!r}: {why}", retryable=retryable, code="upstream_auth_failed"
    )


def _credentials(spec: UpstreamSpec, key: str) -> service_account.Credentials:
    """The service account of a key (parses the private key: CPU only, done in the refresh thread)."""
    try:
        info: Any = orjson.loads(key)
        if not isinstance(info, dict):
            raise ValueError("not a JSON object")
        credentials: service_account.Credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=[SCOPE]
        )
        return credentials
    except (ValueError, KeyError, TypeError) as err:
        kind = type(err).__name__
        raise _auth_failed(spec, f"the key is not a usable service-account JSON ({kind})") from None


class ServiceAccountTokens:
    """Access tokens per (LLM id, key); one instance serves every Vertex AI LLM of an edge process."""

    def __init__(self, refresh_ahead_s: float = REFRESH_AHEAD_S) -> None:
        self.refresh_ahead_s = refresh_ahead_s
        self._entries: dict[int, _Entry] = {}
        self._http = urllib3.PoolManager(timeout=_TIMEOUT, retries=False)
        self.fetches = 0
        """Token refreshes started (tests read it: many requests, one fetch)."""

    def _entry(self, spec: UpstreamSpec) -> _Entry:
        entry = self._entries.get(spec.llm_id)
        if entry is None or entry.key != spec.api_key:  # a new LLM or a rotated key: its old token is dropped
            entry = self._entries[spec.llm_id] = _Entry(spec.api_key)
        return entry

    async def authorization(self, spec: UpstreamSpec) -> str:
        """`Bearer <token>` for `spec`'s LLM; waits for a refresh only when no valid token is cached."""
        if not spec.api_key:
            raise _auth_failed(spec, "no service-account key is set")
        entry = self._entry(spec)
        left = entry.expires_at - time.time()
        if left > USABLE_MARGIN_S:
            if left < self.refresh_ahead_s and entry.refreshing is None:
                self._start(spec, entry, background=True)
            return f"Bearer {entry.token}"
        task = entry.refreshing or self._start(spec, entry, background=False)
        await asyncio.shield(task)
        if entry.expires_at - time.time() <= USABLE_MARGIN_S:
            raise _auth_failed(spec, "the token endpoint issued a token that has already expired")
        return f"Bearer {entry.token}"

    def forget(self, spec: UpstreamSpec) -> None:
        """Drop the cached token (the vendor refused it): the next request fetches a new one."""
        entry = self._entries.get(spec.llm_id)
        if entry is not None and entry.key == spec.api_key:
            entry.token, entry.expires_at = "", 0.0

    def _start(self, spec: UpstreamSpec, entry: _Entry, *, background: bool) -> asyncio.Task[None]:
        self.fetches += 1
        task = asyncio.get_running_loop().create_task(self._refresh(spec, entry))
        entry.refreshing = task

        def done(finished: asyncio.Task[None]) -> None:
            if entry.refreshing is finished:
                entry.refreshing = None
            if background and not finished.cancelled() and finished.exception() is not None:
                log.warning("Vertex AI token refresh for LLM %s failed: %s", spec.slug, finished.exception())
            elif not finished.cancelled():
                finished.exception()  # retrieved: the waiting request reports it

        task.add_done_callback(done)
        return task

    async def _refresh(self, spec: UpstreamSpec, entry: _Entry) -> None:
        token, expires_at = await asyncio.to_thread(self._fetch, spec, entry)
        entry.token, entry.expires_at = token, expires_at

    def _fetch(self, spec: UpstreamSpec, entry: _Entry) -> tuple[str, float]:
        """In a worker thread: the service account's JWT exchanged for an access token at its `token_uri`."""
        if entry.credentials is None:
            entry.credentials = _credentials(spec, entry.key)
        credentials = entry.credentials
        try:
            credentials.refresh(GoogleRequest(self._http))  # type: ignore[no-untyped-call]
        except RefreshError as err:
            code = str(err.args[0] if err.args else "refused").split(":")[0][:80]
            raise _auth_failed(spec, f"the token endpoint refused the service account ({code})") from None
        except TransportError:
            raise _auth_failed(spec, "the token endpoint is unreachable", retryable=True) from None
        except GoogleAuthError as err:
            raise _auth_failed(spec, f"token refresh failed ({type(err).__name__})") from None
        expiry = credentials.expiry
        if not credentials.token or expiry is None:
            raise _auth_failed(spec, "the token endpoint answered without a token")
        return str(credentials.token), expiry.replace(tzinfo=UTC).timestamp()

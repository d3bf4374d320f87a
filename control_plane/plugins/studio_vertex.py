"""The studio's own LLM calls to Gemini on Vertex AI: Gemini's bodies (`studio_gemini`) at Vertex AI's URL, with
an OAuth2 access token minted from the LLM's service-account JSON key.

URL: `{base}/v1/projects/{project}/locations/{region}/publishers/google/models/{model}:generateContent` (or
`:streamGenerateContent?alt=sse`), the project and region from the LLM's metadata, as the edge's Vertex provider.

Tokens: Google's token exchange (`service_account.Credentials.refresh`, a signed JWT posted to the key's
`token_uri`) is blocking HTTP, so it runs in a worker thread, never on the studio's event loop. Tokens are cached
per LLM and key (a rotated key drops its LLM's token) and shared by every event loop of the process (the studio
host's, a chat request's), which is why the cache is guarded by thread locks rather than asyncio tasks: one refresh
per LLM at a time, the others wait for it in their own worker thread. A token nearing its end is refreshed in the
background while calls keep using it. The key never leaves the credentials object and is never logged; errors
name the LLM and the token endpoint's error code only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from datetime import UTC
from urllib.parse import quote

import urllib3
from google.auth.exceptions import GoogleAuthError, RefreshError, TransportError
from google.auth.transport.urllib3 import Request as GoogleRequest
from google.oauth2 import service_account

from .studio_upstream import Upstream

__all__ = ["VertexAuthError", "VertexTokens", "vertex_tokens", "vertex_url"]

logger = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
REFRESH_AHEAD_S = 300.0
"""A token with less than this left is refreshed in the background (Google's tokens live an hour)."""
USABLE_MARGIN_S = 10.0
"""A token with less than this left is not sent any more (it could expire on the way)."""
_TIMEOUT = urllib3.Timeout(connect=5.0, read=10.0)


class VertexAuthError(Exception):
    """No access token for the LLM: its key is unusable or the token endpoint refused or could not be reached.

    The message names the LLM and the reason, never the key."""


def vertex_url(upstream: Upstream, model: str, stream: bool) -> str:
    project = quote(str(upstream.metadata.get("project") or ""), safe="")
    region = quote(str(upstream.metadata.get("region") or ""), safe="")
    name = quote(model.rsplit("/", 1)[-1], safe=".-_@")  # `models/x` or `publishers/google/models/x`: the name
    base = upstream.base.partition("?")[0].rstrip("/").removesuffix("/v1")
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{base}/v1/projects/{project}/locations/{region}/publishers/google/models/{name}:{method}"


@dataclasses.dataclass(slots=True)
class _Entry:
    key: str = dataclasses.field(repr=False)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    credentials: service_account.Credentials | None = None
    token: str = dataclasses.field(default="", repr=False)
    expires_at: float = 0.0
    background: bool = False

    def left(self) -> float:
        return self.expires_at - time.time()


class VertexTokens:
    """Access tokens per (LLM id, key); one instance (`vertex_tokens`) serves every Vertex AI LLM of the process."""

    def __init__(self, refresh_ahead_s: float = REFRESH_AHEAD_S) -> None:
        self.refresh_ahead_s = refresh_ahead_s
        self._entries: dict[int, _Entry] = {}
        self._lock = threading.Lock()
        self._http = urllib3.PoolManager(timeout=_TIMEOUT, retries=False)
        self.fetches = 0
        """Token exchanges made (tests read it: many calls, one exchange)."""

    def _entry(self, upstream: Upstream) -> _Entry:
        with self._lock:
            entry = self._entries.get(upstream.id)
            if entry is None or entry.key != upstream.key:
                entry = self._entries[upstream.id] = _Entry(upstream.key)
            return entry

    async def authorization(self, upstream: Upstream) -> str:
        """`Bearer <token>` for the LLM; waits (off the loop) for a token exchange only when none is usable."""
        entry = self._entry(upstream)
        left = entry.left()
        if left > USABLE_MARGIN_S:
            if left < self.refresh_ahead_s:
                self._refresh_ahead(upstream, entry)
            return f"Bearer {entry.token}"
        await asyncio.to_thread(self._refresh, upstream, entry)
        return f"Bearer {entry.token}"

    def forget(self, upstream: Upstream) -> None:
        """Drop the LLM's token (Vertex AI refused it): the next call exchanges the key again."""
        with self._lock:
            entry = self._entries.get(upstream.id)
        if entry is not None and entry.key == upstream.key:
            entry.token, entry.expires_at = "", 0.0

    def _refresh_ahead(self, upstream: Upstream, entry: _Entry) -> None:
        with self._lock:
            if entry.background:
                return
            entry.background = True

        def run() -> None:
            try:
                self._refresh(upstream, entry, ahead=True)
            except VertexAuthError as exc:  # the current token still works; the next calls try again
                logger.warning("%s", exc)
            finally:
                entry.background = False

        threading.Thread(target=run, name=f"vertex-token-{upstream.id}", daemon=True).start()

    def _refresh(self, upstream: Upstream, entry: _Entry, *, ahead: bool = False) -> None:
        """In a worker thread: exchange the key for a token unless another thread just did."""
        with entry.lock:
            left = entry.left()
            if left > (self.refresh_ahead_s if ahead else USABLE_MARGIN_S):
                return
            token, expires_at = self._fetch(upstream, entry)
            entry.token, entry.expires_at = token, expires_at
        if expires_at - time.time() <= USABLE_MARGIN_S:
            raise VertexAuthError(
                f"Vertex AI credentials of LLM {upstream.slug!r}: the token endpoint issued an expired token"
            )

    def _fetch(self, upstream: Upstream, entry: _Entry) -> tuple[str, float]:
        def failed(why: str) -> VertexAuthError:
            return VertexAuthError(f"Vertex AI credentials of LLM {upstream.slug!r}: {why}")

        self.fetches += 1
        if entry.credentials is None:
            try:
                info = json.loads(entry.key)
                entry.credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise failed(f"the key is not a usable service-account JSON ({type(exc).__name__})") from None
        credentials = entry.credentials
        assert credentials is not None
        try:
            credentials.refresh(GoogleRequest(self._http))
        except RefreshError as exc:
            code = str(exc.args[0] if exc.args else "refused").split(":")[0][:80]
            raise failed(f"the token endpoint refused the service account ({code})") from None
        except TransportError:
            raise failed("the token endpoint is unreachable") from None
        except GoogleAuthError as exc:
            raise failed(f"the token exchange failed ({type(exc).__name__})") from None
        if not credentials.token or credentials.expiry is None:
            raise failed("the token endpoint answered without a token")
        return str(credentials.token), credentials.expiry.replace(tzinfo=UTC).timestamp()


vertex_tokens = VertexTokens()
"""The process's token cache (the studio host's and the web process's calls share it)."""

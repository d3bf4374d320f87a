"""Google Vertex AI in the mock: the Gemini routes at Vertex AI's URL shape, behind OAuth2 tokens the mock issues.

`POST /v1/projects/{project}/locations/{region}/publishers/google/models/{model}:{method}` is served by the Gemini
handlers (`gemini_api.GeminiApi`: same answers, faults and usage), but authenticated like Vertex AI: an
`authorization: Bearer <token>` issued by this mock's `POST /token` and not yet expired, else 401
`UNAUTHENTICATED` in Google's error shape.

`POST /token` is Google's OAuth2 token endpoint for service accounts (RFC 7523 JWT bearer grant, what
`google-auth` sends to a service-account JSON's `token_uri`): the assertion's RS256 signature is verified against
the public key the mock was started with (`--vertex-public-key`), its `exp`/`iat` and its `scope` checked; a good
one gets `{"access_token", "expires_in", "token_type": "Bearer"}` living `--vertex-token-ttl-s` seconds, a bad one
400 `{"error": "invalid_grant", "error_description"}` as Google answers. Without a configured key every assertion
is refused. Each exchange is in the request log (path `/token`, body `{"grant_type", "iss"}`; never the assertion).
"""

from __future__ import annotations

import os
import time
from typing import Any
from urllib.parse import parse_qs

import orjson
from google.auth import exceptions as google_exceptions
from google.auth import jwt
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response

from .exchange import Exchange, MockState, begin
from .gemini_api import GeminiApi
from .gemini_format import GeminiFormat
from .responses import RawResponse

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
_JSON = [(b"content-type", b"application/json; charset=utf-8")]
_UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid "
    "authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


class VertexFormat(GeminiFormat):
    """Gemini's error shape, Vertex AI's credentials: a bearer token this mock issued and that has not expired."""

    def __init__(self, tokens: dict[str, float]) -> None:
        super().__init__(None)
        self.tokens = tokens

    def reject(self, headers: Headers, require_key: str | None) -> tuple[int, str, str | None] | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        expires = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if expires is None or expires <= time.monotonic():
            return 401, _UNAUTHENTICATED, None
        return None


class VertexApi(GeminiApi):
    """The Vertex AI routes and the token endpoint; the issued tokens live as long as the process."""

    def __init__(self, state: MockState) -> None:
        super().__init__(state)
        settings = state.settings
        self.public_key = settings.vertex_public_key
        self.ttl_s = settings.vertex_token_ttl_s
        self.tokens: dict[str, float] = {}

    async def _begin(self, request: Request, *, has_body: bool = True) -> Exchange | Response:
        return await begin(self.state, VertexFormat(self.tokens), request, has_body=has_body)

    async def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("latin-1")).items()}
        grant, assertion = form.get("grant_type", ""), form.get("assertion", "")
        recorder = self.state.recorder
        entry = recorder.open(request, self.state.ids.next("tok_"), {"grant_type": grant, "iss": None})
        status, body = self._exchange(grant, assertion, entry["body"])
        recorder.close(entry, status)
        return RawResponse(status, orjson.dumps(body), _JSON)

    def _exchange(self, grant: str, assertion: str, seen: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if grant != JWT_BEARER:
            return 400, {"error": "unsupported_grant_type", "error_description": f"Invalid grant_type: {grant}"}
        if self.public_key is None:
            return 400, _invalid_grant("No service account is configured on this mock (--vertex-public-key).")
        try:  # who claims to ask, for the log (before the signature says whether it is true)
            seen["iss"] = jwt.decode(assertion, verify=False).get("iss")  # type: ignore[no-untyped-call]
            claims = jwt.decode(assertion, certs=self.public_key, verify=True)  # type: ignore[no-untyped-call]
        except (google_exceptions.GoogleAuthError, ValueError) as err:
            reason = "Invalid JWT Signature." if "signature" in str(err).lower() else f"Invalid JWT: {err}"
            return 400, _invalid_grant(reason)
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return 400, {"error": "invalid_scope", "error_description": "Invalid OAuth scope or ID token audience."}
        now = time.monotonic()
        for expired in [t for t, e in self.tokens.items() if e <= now]:  # the map stays small
            del self.tokens[expired]
        token = f"ya29.mock-{os.urandom(18).hex()}"
        self.tokens[token] = now + self.ttl_s
        return 200, {"access_token": token, "expires_in": self.ttl_s, "token_type": "Bearer"}


def _invalid_grant(description: str) -> dict[str, Any]:
    return {"error": "invalid_grant", "error_description": description}

"""The mock's Vertex AI: `POST /token` exchanges a service account's signed assertion (sent by Google's own
`google-auth`, as a real client would) for a short-lived token; the Vertex routes take only such tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.exceptions import RefreshError
from google.auth.transport.urllib3 import Request as GoogleRequest
from google.oauth2 import service_account

from .conftest import MockServer, start_mock, stop_mock

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
PATH = "/v1/projects/p-123456/locations/us-central1/publishers/google/models/gemini-2.5-flash"
BODY = {"contents": [{"role": "user", "parts": [{"text": "hello vertex"}]}]}


def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return _private_key()


@pytest.fixture(scope="module")
def vertex(key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockServer]:
    public = tmp_path_factory.mktemp("vertex-mock") / "public.pem"
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    server = start_mock("--vertex-public-key", str(public), "--vertex-token-ttl-s", "2")
    yield server
    stop_mock(server)


def _credentials(url: str, key: rsa.RSAPrivateKey, scope: str = SCOPE) -> service_account.Credentials:
    info = {
        "type": "service_account",
        "private_key": _pem(key),
        "client_email": "sa@p-123456.iam.gserviceaccount.com",
        "token_uri": f"{url}/token",
    }
    return service_account.Credentials.from_service_account_info(info, scopes=[scope])


def test_a_signed_assertion_gets_a_token_that_opens_the_vertex_routes(vertex: MockServer, key: rsa.RSAPrivateKey):
    credentials = _credentials(vertex.url, key)
    credentials.refresh(GoogleRequest(urllib3.PoolManager()))
    assert credentials.token.startswith("ya29.mock-") and credentials.expiry is not None
    auth = {"authorization": f"Bearer {credentials.token}"}
    answer = httpx.post(f"{vertex.url}{PATH}:generateContent", json=BODY, headers=auth)
    assert answer.status_code == 200
    assert answer.json()["candidates"][0]["content"]["parts"] == [{"text": "Echo: hello vertex"}]
    stream = httpx.post(f"{vertex.url}{PATH}:streamGenerateContent?alt=sse", json=BODY, headers=auth)
    assert stream.status_code == 200 and stream.text.startswith("data: ")
    time.sleep(2.2)  # the token lived 2 s (--vertex-token-ttl-s)
    expired = httpx.post(f"{vertex.url}{PATH}:generateContent", json=BODY, headers=auth)
    assert expired.status_code == 401 and expired.json()["error"]["status"] == "UNAUTHENTICATED"


def test_a_wrong_key_or_scope_is_refused_as_google_does(vertex: MockServer):
    with pytest.raises(RefreshError, match="invalid_grant"):  # a key the mock's service account does not have
        _credentials(vertex.url, _private_key()).refresh(GoogleRequest(urllib3.PoolManager()))
    refused = httpx.post(f"{vertex.url}/token", data={"grant_type": "password", "assertion": "x"})
    assert refused.status_code == 400 and refused.json()["error"] == "unsupported_grant_type"
    log = httpx.get(f"{vertex.url}/_mock/requests", params={"path": "/token"}).json()["data"]
    assert [entry["status"] for entry in log[-2:]] == [400, 400]
    assert all("assertion" not in entry["body"] for entry in log)


def test_a_token_for_another_scope_is_refused(vertex: MockServer, key: rsa.RSAPrivateKey):
    with pytest.raises(RefreshError, match="invalid_scope"):
        _credentials(vertex.url, key, "https://www.googleapis.com/auth/devstorage.read_only").refresh(
            GoogleRequest(urllib3.PoolManager())
        )

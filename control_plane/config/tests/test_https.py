"""HTTPS behind a TLS-ending proxy, through the real `fjordgate web` process (uvicorn, the production settings).

The session and CSRF cookies were never `Secure`, no HSTS header was sent, and Django could not know that a
request reached the proxy over HTTPS. With `FJORDGATE_PUBLIC_URL` in https and the proxy's header named, the
cookies carry `Secure` and HTTPS requests get `Strict-Transport-Security`; without them (`fjordgate up` on
http://127.0.0.1) nothing changes, and a client's `X-Forwarded-Proto` is not believed.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.e2e.nats_server import free_port
from tests.support.django_db import test_database_url
from tests.support.processes import ROOT, fjordgate_argv

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pw-Https-123456!"
PUBLIC = "https://fjordgate.example.com"
SECRETS = {
    "DJANGO_SECRET_KEY": "https-test-secret",
    "FJORDGATE_SECRET_KEY": Fernet.generate_key().decode(),
    "FJORDGATE_EDGE_SECRET": Fernet.generate_key().decode(),
    "DJANGO_SETTINGS_MODULE": "control_plane.config.settings",
}
UNSET = ("FJORDGATE_PUBLIC_URL", "FJORDGATE_PROXY_SSL_HEADER", "FJORDGATE_SECURE_COOKIES", "FJORDGATE_HSTS_SECONDS")


def _operator(django_user_model) -> None:
    """A superuser whose password the production settings' hashers read (the test settings hash with MD5)."""
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    user = django_user_model.objects.create_superuser("ops", "ops@example.com")
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "https-test-salt")
    user.save(update_fields=["password"])


def _web(processes, redis_url: str, **extra: str) -> str:
    port = free_port()
    env: dict[str, str | None] = {name: None for name in UNSET}
    env.update(SECRETS, DATABASE_URL=test_database_url(), REDIS_URL=redis_url, FJORDGATE_WEB_PORT=str(port), **extra)
    processes(fjordgate_argv("web"), env=env, ready_url=f"http://127.0.0.1:{port}/health", timeout=60)
    return f"http://127.0.0.1:{port}"


def _sign_in(base: str, headers: dict[str, str]) -> tuple[httpx.Response, httpx.Response]:
    """The admin's login page, then the login itself: (the page, the answer that sets the session cookie)."""
    with httpx.Client(base_url=base, headers=headers, trust_env=False) as client:
        page = client.get("/admin/login/")
        assert page.status_code == 200, page.text[:500]
        token = page.cookies["csrftoken"]
        origin = f"{headers.get('X-Forwarded-Proto', 'http')}://{headers['Host']}"
        client.cookies.clear()  # sent by hand: a client on http://127.0.0.1 keeps a Secure cookie to itself
        answer = client.post(
            "/admin/login/?next=/admin/",
            data={"csrfmiddlewaretoken": token, "username": "ops", "password": PASSWORD, "next": "/admin/"},
            headers={"Origin": origin, "Referer": f"{origin}/admin/login/", "Cookie": f"csrftoken={token}"},
        )
        assert answer.status_code == 302, answer.text[:2000]
        return page, answer


def _cookie(response: httpx.Response, name: str) -> list[str]:
    """The attributes of the `name` cookie the response sets, lower-cased (`["secure", "httponly", ...]`)."""
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return [part.strip().split("=")[0].lower() for part in header.split(";")[1:]]
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


def test_behind_a_tls_proxy_cookies_are_secure_and_hsts_is_sent(django_user_model, redis_url, processes):
    _operator(django_user_model)
    base = _web(processes, redis_url, FJORDGATE_PUBLIC_URL=PUBLIC, FJORDGATE_PROXY_SSL_HEADER="X-Forwarded-Proto")
    proxied = {"Host": "fjordgate.example.com", "X-Forwarded-Proto": "https"}
    page, answer = _sign_in(base, proxied)
    assert "secure" in _cookie(page, "csrftoken")
    assert {"secure", "httponly"} <= set(_cookie(answer, "sessionid"))
    assert page.headers["strict-transport-security"] == "max-age=31536000"
    # a request the proxy forwarded from plain HTTP is not HTTPS: no HSTS on it (browsers ignore it there anyway)
    with httpx.Client(base_url=base, trust_env=False) as client:
        plain = client.get("/admin/login/", headers={"Host": "fjordgate.example.com", "X-Forwarded-Proto": "http"})
    assert plain.status_code == 200 and "strict-transport-security" not in plain.headers


def test_on_plain_http_nothing_is_secure_and_a_forwarded_proto_is_not_believed(django_user_model, redis_url, processes):
    _operator(django_user_model)
    base = _web(processes, redis_url)
    page, answer = _sign_in(base, {"Host": "127.0.0.1"})
    assert "secure" not in _cookie(page, "csrftoken") and "secure" not in _cookie(answer, "sessionid")
    assert "strict-transport-security" not in page.headers
    with httpx.Client(base_url=base, trust_env=False) as client:
        forged = client.get("/admin/login/", headers={"X-Forwarded-Proto": "https"})
    assert forged.status_code == 200 and "strict-transport-security" not in forged.headers


def test_a_bad_proxy_header_name_stops_the_web_process_in_one_line(postgres_url, redis_url):
    env = {k: v for k, v in os.environ.items() if k not in (*UNSET, "DJANGO_SETTINGS_MODULE")}
    env.update(SECRETS, DATABASE_URL=postgres_url, REDIS_URL=redis_url, FJORDGATE_PROXY_SSL_HEADER="X-Proto: https")
    result = subprocess.run(
        [sys.executable, "-m", "fjordgate", "web"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result
    assert "FJORDGATE_PROXY_SSL_HEADER" in result.stderr and "Traceback" not in result.stderr

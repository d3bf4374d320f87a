"""Single sign-on end to end: a real OpenID provider process, the control plane, headless Chromium.

A person clicks "Sign in with ..." on the admin's login page, signs in at the provider, and lands in the admin
with what the provider's groups claim grants: staff, Fjordgate groups and namespace roles.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from control_plane.accounts import oidc
from control_plane.accounts.models import NamespaceRole
from control_plane.audit.models import AuditEntry
from fjordgate.embedded import free_port

pytestmark = pytest.mark.django_db(transaction=True)

GROUP_MAP = {"team-a-admins": ["admin:team-a", "group:developers"], "auditors": "viewer:team-b"}


@pytest.fixture
def provider() -> Iterator[str]:
    """oidc-provider-mock as its own process (a real provider: discovery, JWKS, signed ID tokens, userinfo)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the OpenID provider did not start")
            time.sleep(0.1)
        yield issuer
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def sso(settings, provider):
    settings.FJORDGATE_OIDC_ISSUER = provider
    settings.FJORDGATE_OIDC_GROUP_MAP = json.dumps(GROUP_MAP)
    settings.FJORDGATE_OIDC_PROVIDER_NAME = "Acme SSO"
    settings.OIDC_RP_CLIENT_ID = "fjordgate"
    settings.OIDC_RP_CLIENT_SECRET = "fjordgate-secret"
    settings.OIDC_RP_SCOPES = "openid email profile"
    settings.AUTHENTICATION_BACKENDS = [
        "control_plane.accounts.oidc.FjordgateOIDCBackend",
        "django.contrib.auth.backends.ModelBackend",
    ]
    oidc._discovery = None
    return provider


def _sign_in(page, live_server, provider: str, subject: str, claims: dict) -> None:
    assert httpx.put(f"{provider}/users/{subject}", json=claims).status_code == 204
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.click("#sso-login")
    page.fill("input[name=sub]", subject)
    page.click("button[type=submit]:has-text('Authorize')")
    page.wait_for_url(f"{live_server.url}/admin/**")


def test_sign_in_lands_in_the_admin_with_the_roles_the_groups_claim_gives(page, screenshot, live_server, sso):
    Group.objects.create(name="auditors")  # a provider group named like a Fjordgate group joins it unmapped
    claims = {
        "email": "alice@example.com",
        "preferred_username": "alice",
        "groups": ["team-a-admins", "auditors", "unrelated"],
    }
    _sign_in(page, live_server, sso, "alice-sub", claims)
    screenshot("admin-home")
    assert "Welcome," in page.content() and "alice" in page.content()
    user = get_user_model().objects.get(username="alice")
    assert user.is_staff and not user.is_superuser and not user.has_usable_password()
    assert sorted(user.groups.values_list("name", flat=True)) == ["auditors", "developers"]
    roles = dict(NamespaceRole.objects.filter(user=user).values_list("namespace", "role"))
    assert roles == {"team-a": "admin", "team-b": "viewer"}
    granted = AuditEntry.objects.filter(object_type="accounts.namespacerole", action="create")
    assert {(e.namespace, e.actor_label, e.source, e.actor_user_id) for e in granted} == {
        ("team-a", "single sign-on", "sso", user.pk),
        ("team-b", "single sign-on", "sso", user.pk),
    }

    # The provider drops alice from team-a-admins: her next sign-in takes the role away.
    page.context.clear_cookies()
    _sign_in(page, live_server, sso, "alice-sub", {**claims, "groups": ["auditors"]})
    assert dict(NamespaceRole.objects.filter(user=user).values_list("namespace", "role")) == {"team-b": "viewer"}
    removed = AuditEntry.objects.get(object_type="accounts.namespacerole", action="delete")
    assert (removed.namespace, removed.changes["role"], removed.source) == ("team-a", ["admin", None], "sso")
    assert get_user_model().objects.filter(username__startswith="alice").count() == 1  # same user, by subject


def test_password_form_is_gone_when_local_passwords_are_off(page, live_server, sso, settings, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123456")
    settings.FJORDGATE_LOCAL_PASSWORDS = False
    settings.AUTHENTICATION_BACKENDS = ["control_plane.accounts.oidc.FjordgateOIDCBackend"]
    page.goto(f"{live_server.url}/admin/login/")
    assert page.locator("#sso-login").is_visible() and page.locator("input[name=password]").count() == 0
    # A password posted anyway does not sign in.
    client = Client()
    reply = client.post("/admin/login/", {"username": "root", "password": "pw-root-123456", "next": "/admin/"})
    assert reply.status_code == 200 and "_auth_user_id" not in client.session

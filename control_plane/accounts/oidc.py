"""Single sign-on with OpenID Connect, through mozilla-django-oidc, for the admin (and every signed-in page).

Enabled by `FJORDGATE_OIDC_ISSUER`. Why subclasses instead of mozilla-django-oidc's settings alone: it wants each
endpoint typed in; an operator knows the issuer, and the provider's discovery document
(`<issuer>/.well-known/openid-configuration`) names the endpoints, so they are read from it on first use (and
cached). Explicit `OIDC_OP_*` settings still win.

What a sign-in grants is decided on every sign-in from the provider's groups claim (`FJORDGATE_OIDC_GROUPS_CLAIM`,
default `groups`) through `FJORDGATE_OIDC_GROUP_MAP`, a JSON object from a provider group to one grant or a list:

    {"platform-admins": "superuser", "team-a": ["admin:team-a", "group:developers"], "auditors": "viewer:team-a"}

- `superuser`: a super-administrator; `staff`: may enter the admin;
- `admin:<ns>`, `operator:<ns>`, `viewer:<ns>`: a namespace role (`""` after the colon: the global objects);
  a namespace role also lets the user enter the admin, where it is enforced;
- `group:<name>`: membership of that Fjordgate group (created if missing), whose catalogue decides what the
  user may request in the portal. A provider group with the same name as an existing Fjordgate group joins it
  without a mapping.

The user's flags, groups and sign-in roles are replaced by what the claim grants now, so removing someone from a
provider group takes effect at their next sign-in. Roles granted by hand (admin, API) stay, except in a namespace
the claim grants a role in, where the claim decides (`roles.py`); a user left with such roles stays staff. A
mapped namespace that breaks the namespace rule (`sync/namespaces.py`) is skipped and logged, never stored. Users
created by sign-in have no usable local password.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import httpx
import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.db import transaction
from mozilla_django_oidc.auth import OIDCAuthenticationBackend  # type: ignore[import-untyped]  # no stubs published
from mozilla_django_oidc.utils import import_from_settings  # type: ignore[import-untyped]
from mozilla_django_oidc.views import (  # type: ignore[import-untyped]
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from control_plane.audit.actor import acting_as
from control_plane.sync.namespaces import namespace_is_valid

from .oidc_grants import Grants, parse_group_map

__all__ = [
    "FjordgateOIDCBackend",
    "OIDCCallbackView",
    "OIDCLoginView",
    "grants_from_claims",
    "parse_group_map",
    "provider_setting",
]

log = logging.getLogger("fjordgate.oidc")

_DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
_DISCOVERY_TTL_S = 3600.0
_discovery_lock = threading.Lock()
_discovery: tuple[float, dict[str, Any]] | None = None


def _discovery_document() -> dict[str, Any]:
    global _discovery
    with _discovery_lock:
        if _discovery is not None and time.monotonic() - _discovery[0] < _DISCOVERY_TTL_S:
            return _discovery[1]
        issuer = settings.FJORDGATE_OIDC_ISSUER.rstrip("/")
        try:
            response = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10.0)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ImproperlyConfigured(f"OpenID provider {issuer} has no readable discovery document: {exc}") from exc
        if document.get("issuer", "").rstrip("/") != issuer:
            raise ImproperlyConfigured(f"discovery document of {issuer} names issuer {document.get('issuer')!r}")
        _discovery = (time.monotonic(), document)
        return document


def provider_setting(attr: str, *args: Any) -> Any:
    """mozilla-django-oidc's `get_settings`, with the provider's endpoints from its discovery document."""
    if attr in _DISCOVERED and not hasattr(settings, attr):
        return _discovery_document()[_DISCOVERED[attr]]
    if attr == "OIDC_RP_SIGN_ALGO" and not hasattr(settings, attr):
        algorithms = _discovery_document().get("id_token_signing_alg_values_supported") or ["RS256"]
        return "RS256" if "RS256" in algorithms else algorithms[0]
    return import_from_settings(attr, *args)


def _claimed_groups(claims: dict[str, Any]) -> list[str]:
    value = claims.get(settings.FJORDGATE_OIDC_GROUPS_CLAIM, [])
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    return [str(item) for item in value] if isinstance(value, list) else []


def grants_from_claims(claims: dict[str, Any]) -> Grants:
    mapping = parse_group_map(settings.FJORDGATE_OIDC_GROUP_MAP)
    existing = set(Group.objects.filter(name__in=_claimed_groups(claims)).values_list("name", flat=True))
    grants = Grants()
    for provider_group in _claimed_groups(claims):
        for grant in mapping.get(provider_group, []):
            kind, _, namespace = grant.partition(":")
            if kind in Grants.ROLES and not namespace_is_valid(namespace):
                log.warning(
                    "ignored grant %r of provider group %r for %s: %r is no valid namespace",
                    grant,
                    provider_group,
                    claims.get("sub", "?"),
                    namespace,
                )
                continue
            grants.add(grant)
        if provider_group in existing:
            grants.add(f"group:{provider_group}")
    return grants


class FjordgateOIDCBackend(OIDCAuthenticationBackend):
    """Finds the user by the provider's subject (kept in the profile), else by e-mail; applies the grants."""

    get_settings = staticmethod(provider_setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django builds every backend for every authenticate() (password sign-ins too) and for each session
        # lookup: the provider's settings are read only when a callback actually carries a code.
        self.UserModel = get_user_model()

    def authenticate(self, request: Any, **kwargs: Any) -> Any:
        if request is None or not request.GET.get("code") or not request.GET.get("state"):
            return None
        if not settings.FJORDGATE_OIDC_ISSUER:
            return None
        super().__init__()
        return super().authenticate(request, **kwargs)

    def retrieve_matching_jwk(self, token: Any) -> Any:
        """The provider's signing key. A token without `kid` (RFC 7515 makes it optional) is accepted only when
        the provider publishes exactly one key, which is then unambiguous; otherwise the library's match by `kid`."""
        if "kid" in jwt.get_unverified_header(token):
            return super().retrieve_matching_jwk(token)
        response = httpx.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=self.get_settings("OIDC_TIMEOUT", 10.0))
        response.raise_for_status()
        keys = response.json().get("keys", [])
        if len(keys) != 1:
            raise SuspiciousOperation("ID token names no key id and the provider publishes several keys")
        return jwt.PyJWK(keys[0])

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        from .models import Profile

        subject = f"{settings.FJORDGATE_OIDC_ISSUER.rstrip('/')}#{claims.get('sub', '')}"
        by_subject = Profile.objects.filter(metadata__oidc_subject=subject).values_list("user_id", flat=True)
        users = self.UserModel.objects.filter(pk__in=list(by_subject))
        if users.exists() or not claims.get("email"):
            return users
        return self.UserModel.objects.filter(email__iexact=claims["email"])

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        return bool(claims.get("sub"))

    def create_user(self, claims: dict[str, Any]) -> Any:
        username = claims.get("preferred_username") or claims.get("email") or claims["sub"]
        base, suffix = str(username)[:140], 1
        while self.UserModel.objects.filter(username=username).exists():
            suffix += 1
            username = f"{base}-{suffix}"
        user = self.UserModel(username=username, email=claims.get("email", ""))
        user.set_unusable_password()
        user.save()
        return self.update_user(user, claims)

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        from .models import Profile
        from .roles import user_namespace_roles_set

        grants = grants_from_claims(claims)
        # The provider's claim, not the person signing in, decides these flags, groups and roles: the audit trail
        # says so (the request has no signed-in user yet, it would read "anonymous").
        with acting_as("system", "single sign-on", "sso", user_id=user.pk), transaction.atomic():
            user.email = claims.get("email", user.email)
            user.first_name = str(claims.get("given_name", user.first_name))[:150]
            user.last_name = str(claims.get("family_name", user.last_name))[:150]
            user.is_superuser = grants.superuser
            user_namespace_roles_set(user=user, roles=grants.roles)
            user.is_staff = grants.staff or user.namespace_roles.exists()  # hand grants kept need the admin
            user.save()
            user.groups.set([Group.objects.get_or_create(name=name)[0] for name in sorted(grants.groups)])
            profile, _ = Profile.objects.get_or_create(user=user)
            profile.metadata = {
                **profile.metadata,
                "oidc_subject": f"{settings.FJORDGATE_OIDC_ISSUER.rstrip('/')}#{claims['sub']}",
            }
            profile.save()
        log.info(
            "signed in %s via OpenID Connect: superuser=%s staff=%s groups=%s roles=%s",
            user.get_username(),
            grants.superuser,
            grants.staff,
            sorted(grants.groups),
            grants.roles,
        )
        return user


class OIDCLoginView(OIDCAuthenticationRequestView):
    get_settings = staticmethod(provider_setting)


class OIDCCallbackView(OIDCAuthenticationCallbackView):
    get_settings = staticmethod(provider_setting)

"""Personal API tokens: created (key shown once, stored hashed), revoked, and checked on each API request.

`ApiTokenAuthentication` reads `Authorization: Token <key>` (the header DRF's old clear-text tokens used), so
clients keep their header, and `Authorization: Bearer <key>`, which most API clients and HTTP libraries send for a
bearer token (a Bearer key used to be ignored, and the caller told no credentials were given); `request.auth` is
the `ApiToken`, which `access.access_for` uses to narrow the owner's roles.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header

from .access import GLOBAL_ONLY, Access
from .models import ApiToken

__all__ = ["ApiTokenAuthentication", "api_token_create", "api_token_revoke", "api_tokens_visible", "hash_key"]

KEY_PREFIX = "fjt_"
PREFIX_LENGTH = 12
LAST_USED_EVERY = dt.timedelta(minutes=1)  # at most one write per token per minute, not one per request
MAX_NAMESPACES = 100


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_token_create(
    *,
    owner: Any,
    name: str = "",
    namespaces: list[str] | None = None,
    read_only: bool = False,
    expires_at: dt.datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token for `owner`; returns it with the clear key, which is never stored."""
    namespaces = sorted(set(namespaces or []))
    if len(namespaces) > MAX_NAMESPACES:
        raise ValidationError({"namespaces": f"At most {MAX_NAMESPACES} namespaces."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "Give a time in the future."})
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        owner=owner,
        name=name,
        prefix=key[:PREFIX_LENGTH],
        key_hash=hash_key(key),
        namespaces=namespaces,
        read_only=read_only,
        expires_at=expires_at,
    )
    token.full_clean()
    token.save()
    return token, key


def api_tokens_visible(queryset: QuerySet[ApiToken], *, access: Access, user: Any) -> QuerySet[ApiToken]:
    """The tokens `user` may see: their own, or every user's for whoever may change the global objects (the
    super-administrators and the administrators of "", who manage users). A token is not an object of any
    namespace, so the namespace roles' "global objects are readable" would show every user's token names,
    prefixes and last use to an operator or viewer of any namespace."""
    if access.can_change(ApiToken, GLOBAL_ONLY):
        return queryset
    return queryset.filter(owner_id=getattr(user, "pk", None))


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


class ApiTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` or `Bearer <key>` against the hashed tokens; expired, revoked or unknown -> 401.

    Another scheme (`Basic`, ...) is left to the other authentication classes, as DRF's own does."""

    keywords = (b"token", b"bearer")

    def authenticate(self, request: Any) -> tuple[Any, ApiToken] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in self.keywords:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                "Invalid token header. No credentials provided."
                if len(parts) == 1
                else "Invalid token header. Token string should not contain spaces."
            )
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed(
                "Invalid token header. Token string should not contain invalid characters."
            ) from None
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key: str):
        token = ApiToken.objects.select_related("owner").filter(key_hash=hash_key(key)).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        now = timezone.now()
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token was revoked.")
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed("This token has expired.")
        if not token.owner.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)  # no signal: not an audited change
        return token.owner, token

"""Which audit entries a caller may read, beyond the namespace rule every list applies (`accounts/access.py`)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from .models import AuditEntry

__all__ = ["audit_entries_visible"]


def audit_entries_visible(queryset: QuerySet[AuditEntry], *, access: Any, user: Any) -> QuerySet[AuditEntry]:
    """Entries about API tokens (owner, name, prefix) only to whoever may see the token: its owner, and every
    user's to the global administrators (`accounts.tokens.api_tokens_visible`). A token is a global object, so
    the namespace rule alone showed every user's token entries to any role holder, as the token list did."""
    from control_plane.accounts.models import ApiToken
    from control_plane.accounts.tokens import api_tokens_visible

    if access.can_change(ApiToken, ""):
        return queryset
    own = [
        str(pk)
        for pk in api_tokens_visible(ApiToken.objects.all(), access=access, user=user).values_list("pk", flat=True)
    ]
    return queryset.exclude(Q(object_type="accounts.apitoken") & ~Q(object_id__in=own))

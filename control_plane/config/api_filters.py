"""The caller's access per request and the filter backend that hides the namespaces it may not view.

Kept apart from `api.py` because DRF imports DEFAULT_FILTER_BACKENDS while `rest_framework.viewsets` loads.
"""

from __future__ import annotations

from typing import Any

from rest_framework.filters import BaseFilterBackend

from control_plane.accounts.access import Access, access_for

__all__ = ["NamespaceFilterBackend", "request_access"]


def request_access(request: Any) -> Access:
    """The caller's access (user narrowed by the API token used), computed once per request."""
    cached = getattr(request, "_fjordgate_access", None)
    if cached is None:
        cached = access_for(getattr(request, "user", None), getattr(request, "auth", None))
        request._fjordgate_access = cached
    return cached


class NamespaceFilterBackend(BaseFilterBackend):
    """Lists and details (`get_object` filters too) show only the namespaces the caller may view.

    Self-service viewsets (`self_service = True`: apps, keys, the catalogue) restrict non-administrators to
    their own rows in `get_queryset`; every other viewset shows them nothing.
    """

    def filter_queryset(self, request, queryset, view):
        access = request_access(request)
        if access.administers_anything:
            return access.filter_visible(queryset)
        return queryset if getattr(view, "self_service", False) else queryset.none()

"""Reads of the edges domain."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import EdgeInstance, EdgeReloadRequest, PublishedConfig


def edges_list(*, namespace: str | None = None) -> QuerySet[EdgeInstance]:
    edges = EdgeInstance.objects.all()
    return edges if namespace is None else edges.filter(namespace=namespace)


def published_config_get(*, namespace: str) -> PublishedConfig | None:
    return PublishedConfig.objects.filter(namespace=namespace).first()


def edge_reloads_unpublished(*, limit: int = 100) -> list[EdgeReloadRequest]:
    return list(EdgeReloadRequest.objects.filter(published_at__isnull=True).order_by("created_at")[:limit])


def edge_namespaces() -> list[str]:
    """Every namespace some edge has announced itself in (used to fan a global change out)."""
    return sorted(set(EdgeInstance.objects.values_list("namespace", flat=True)))

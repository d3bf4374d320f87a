"""Limit/offset pagination with bounds, so `?offset=` or `?limit=` past PostgreSQL's bigint is a page, not a 500."""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination

__all__ = ["BoundedLimitOffsetPagination", "MAX_LIMIT", "MAX_OFFSET"]

MAX_LIMIT = 1000
MAX_OFFSET = 10**12
"""Far beyond any table here, far below 2**63: a larger offset is past the end anyway, so it gives an empty page."""


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_offset(self, request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)

"""A client's JSON nested too deeply is a 400 in the API's one error shape on every JSON endpoint, not a 500.

Python's `json` (DRF's parser) raised RecursionError for a body nested ~1,000 levels deep; a shallower one reached
the serializers and psycopg's encoder, recursive too. `control_plane.config.parsers.BoundedJSONParser`."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("depth", [129, 5000])
@pytest.mark.parametrize("path", ["/api/v1/apps/", "/api/v1/users/", "/api/v1/plugins/", "/api/v1/budgets/"])
def test_a_body_nested_too_deeply_is_a_400_naming_the_bound(admin_api, path, depth):
    body = '{"name": "x", "metadata": ' + nested(depth) + "}"
    reply = admin_api.generic("POST", path, body, content_type="application/json")
    assert reply.status_code == 400, reply.content[:300]
    assert "nested deeper than 128 levels" in reply.json()["message"]


def test_a_body_within_the_bound_is_read_as_before(admin_api):
    """127 levels inside the body's object: parsed, and refused by the serializer for what it is (not a list)."""
    body = '{"name": "x", "slug": "x", "metadata": ' + nested(127) + "}"
    reply = admin_api.generic("POST", "/api/v1/users/", body, content_type="application/json")
    assert reply.status_code == 400
    assert "nested deeper" not in reply.json()["message"]

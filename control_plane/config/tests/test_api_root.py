"""`GET /api/v1/` is where a client of the API starts: it lists every collection the API serves, and each link
answers. The edges, analytics and schedules collections, routed by their own apps, used to be missing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_the_root_lists_every_collection_and_each_link_answers(admin_api):
    root = admin_api.get("/api/v1/")
    assert root.status_code == 200
    links = root.json()
    for name in ("apps", "llms", "budgets", "edges", "analytics/records", "analytics/usage", "schedules"):
        assert name in links, name
    for name in ("schedules/runs", "resources/types"):
        assert name in links, name
    for name, url in links.items():
        answer = admin_api.get(url)
        assert answer.status_code == 200, (name, url, answer.status_code, answer.content[:200])


def test_the_root_needs_authentication(client):
    assert client.get("/api/v1/", HTTP_ACCEPT="application/json").status_code in (401, 403)

"""A NUL character in a URL is a 400, not a query PostgreSQL refuses (`control_plane.config.request_text`).

Every admin changelist answered `?namespace__exact=%00` with a 500: the list filter's lookup reached psycopg, which
refuses to send NUL in text."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client

pytestmark = pytest.mark.django_db


def test_no_admin_changelist_fails_on_a_nul_in_its_filters_or_search(admin_user):
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    failed = []
    changelists = [f"/admin/{m._meta.app_label}/{m._meta.model_name}/" for m in admin.site._registry]
    assert len(changelists) > 10
    for url in changelists:
        for query in ("namespace__exact=%00", "q=a%00b", "o=%00", "p=99999999999999999999"):
            status = client.get(f"{url}?{query}").status_code
            if status >= 500:
                failed.append((url, query, status))
    assert failed == []
    assert client.get("/admin/applications/app/?namespace__exact=%00").status_code == 400
    assert client.get("/admin/applications/app/?namespace__exact=default").status_code == 200


def test_the_api_answers_a_nul_in_its_url_in_its_own_error_shape(admin_api):
    reply = admin_api.get("/api/v1/apps/?namespace=%00")
    assert reply.status_code == 400
    assert reply.json() == {"message": "The URL cannot contain NUL (%00) characters.", "extra": {}}
    assert admin_api.get("/api/v1/apps/?namespace=default").status_code == 200

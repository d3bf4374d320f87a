"""Every registered ModelAdmin's add and change forms, posted with bad input as a browser would send it: invalid
JSON, JSON of the wrong shape, `null`, an escaped NUL and an unpaired surrogate, oversized and negative values, unknown choices. The answer is the form with
its errors (or a redirect with a message), never a server error."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from control_plane.plugins.services import plugin_register

from .admin_form_data import form_data
from .seed import seed_one_of_each

pytestmark = pytest.mark.django_db

EVERY_FIELD_AT_ONCE = ["null", '{"a": ', "x" * 3000, "-1", "999999999999999999999"]
# Valid JSON of the wrong shape, null, and JSON holding what PostgreSQL cannot store (an escaped NUL, an unpaired
# surrogate), one field at a time with the rest of the form valid.
ONE_FIELD_AT_A_TIME = ["[1]", "null", '{"k": "a\\u0000b"}', '["\\ud800"]']
ADMINS = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _editable(data: dict[str, list[str]], html: str) -> list[str]:
    """Names of the visible text inputs and textareas (not hidden management fields, not the CSRF token)."""
    hidden = {name for name in data if f'type="hidden" name="{name}"' in html or name == "csrfmiddlewaretoken"}
    return [name for name in data if name not in hidden and not name.startswith("_")]


def _bad_posts(html: str) -> list[tuple[str, dict]]:
    base = form_data(html, form_id="")
    fields = _editable(base, html)
    posts = [(f"all={bad[:12]!r}", {**base, **{name: [bad] for name in fields}}) for bad in EVERY_FIELD_AT_ONCE]
    for name in fields:
        posts += [(f"{name}={bad!r}", {**base, name: [bad]}) for bad in ONE_FIELD_AT_A_TIME]
    return posts


def test_admin_forms_answer_bad_input_without_server_error(client, admin_user):
    """One pass over every registered ModelAdmin (seeded once: a test per admin would seed 25 times)."""
    seed_one_of_each(admin_user)
    client.force_login(admin_user)
    client.raise_request_exception = False  # every failing form listed, not only the first
    request = _request(admin_user)
    failures, posted = [], set()
    for model, model_admin in ADMINS:
        info = (model._meta.app_label, model._meta.model_name)
        urls = []
        if model_admin.has_add_permission(request):
            urls.append(reverse("admin:{}_{}_add".format(*info)))
        obj = model_admin.get_queryset(request).first()
        if obj is not None and model_admin.has_change_permission(request, obj):
            urls.append(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
        for url in urls:
            page = client.get(url)
            assert page.status_code == 200, url
            for label, data in _bad_posts(page.content.decode()):
                response = client.post(url, data)
                posted.add(model._meta.label)
                if response.status_code >= 500:
                    failures.append(f"{url} {label}: {response.status_code}")
    assert {"plugins.Plugin", "llms.LLM", "applications.App", "budgets.Budget", "auth.User"} <= posted
    assert failures == []


def _request(user):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = user
    return request


def test_plugin_form_shows_schema_errors_of_other_config_keys(client, admin_user):
    """Valid JSON that the plugin's schema refuses is a form error on add and on change, not a 500."""
    client.force_login(admin_user)
    plugin = plugin_register(data={"slug": "ipf", "import_path": "plugins.ip_filter.plugin:create_plugin"})
    for url in (reverse("admin:plugins_plugin_add"), reverse("admin:plugins_plugin_change", args=[plugin.pk])):
        data = form_data(client.get(url).content.decode())
        data.update(slug=["ipf2" if url.endswith("add/") else "ipf"], import_path=[plugin.import_path])
        for raw, expected in (('{"unknown": 1}', "unknown"), ("[1, 2]", "Give a JSON object")):
            response = client.post(url, {**data, "raw_config": [raw]})
            assert response.status_code == 200, (url, raw, response.status_code)
            assert expected in response.content.decode(), (url, raw)
    plugin.refresh_from_db()
    assert plugin.config == {"allow": [], "deny": [], "status_code": 403} or "unknown" not in plugin.config

"""Plugin pages in the admin (UIProvider) and the portal (PortalUIProvider), with the bundled examples.

What a user notices: a menu entry, a page whose sandboxed frame gets the plugin's assets, RPC answers; and what
an attacker notices: staff-only / login-only, CSRF enforced, asset paths that leave the plugin refused, a frame
link that only works for the user it was made for, oversized bodies and assets refused."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from control_plane.plugins.pages import ASSET_CSP, clean_asset_path
from control_plane.plugins.services import plugin_register

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def board():
    return plugin_register(data={"slug": "llm-health-board", "entry_point": "llm-health-board"})


@pytest.fixture
def library():
    return plugin_register(
        data={
            "slug": "prompt-library",
            "entry_point": "prompt-library",
            "config": {"shared": [{"title": "Summarise", "text": "Three bullets."}]},
        }
    )


def _frame_src(html: str) -> str:
    match = re.search(r'<iframe[^>]*sandbox="allow-scripts allow-forms"[^>]*src="([^"]+)"', html)
    assert match, "the page frames the plugin in a sandbox"
    return match.group(1)


def test_admin_menu_page_assets_and_rpc(board, admin_user):
    client = Client()
    client.force_login(admin_user)
    home = client.get("/admin/").content.decode()
    assert "Fjordgate administration" in home and 'href="/admin/dashboard/"' in home
    assert 'href="/admin/plugins/llm-health-board/"' in home and "LLM health board" in home
    page = client.get("/admin/plugins/llm-health-board/")
    assert page.status_code == 200
    src = _frame_src(page.content.decode())
    index = Client().get(src)  # the sandboxed frame sends no cookie: the signed link is enough
    assert index.status_code == 200 and index["Content-Type"].startswith("text/html")
    assert index["Content-Security-Policy"] == ASSET_CSP and index["X-Content-Type-Options"] == "nosniff"
    js = Client().get(src.replace("index.html", "board.js"))
    assert js.status_code == 200 and b"postMessage" in js.content
    assert Client().get(src.replace("index.html", "missing.js")).status_code == 404
    answer = client.post("/admin/plugins/llm-health-board/rpc/board", b"{}", content_type="application/json")
    assert answer.status_code == 200 and answer.json() == {"llms": []}
    assert client.get("/admin/plugins/plugin/").status_code == 200, "the plugin list stays where it was"


def test_admin_pages_are_staff_only_and_csrf_protected(board, admin_user, plain_user):
    anonymous = Client()
    assert anonymous.get("/admin/plugins/llm-health-board/").status_code == 302
    assert anonymous.post("/admin/plugins/llm-health-board/rpc/board", b"{}", content_type="x/y").status_code == 302
    non_staff = Client()
    non_staff.force_login(plain_user)
    assert non_staff.get("/admin/plugins/llm-health-board/").status_code == 302
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    assert (
        strict.post("/admin/plugins/llm-health-board/rpc/board", b"{}", content_type="application/json").status_code
        == 403
    )
    staff_page = Client()
    staff_page.force_login(admin_user)
    src = _frame_src(staff_page.get("/admin/plugins/llm-health-board/").content.decode())
    token = src.split("/")[5]
    forged = src.replace(token, token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    assert Client().get(forged).status_code == 403
    other_plugin = src.replace("/llm-health-board/", "/prompt-library/")
    assert Client().get(other_plugin).status_code == 403, "a link is for one plugin"
    admin_user.is_staff = False
    admin_user.save()
    assert Client().get(src).status_code == 403, "a link stops working when its user is no longer staff"


def test_asset_paths_that_leave_the_plugin_are_refused(board, admin_user):
    for bad in ("../plugin.py", "a/../../x", "/etc/passwd", "a//b", "a\\b", ".hidden", "x\x00y", "ok/./x"):
        assert clean_asset_path(bad) is None, bad
    assert clean_asset_path("static/app.v2.js") == "static/app.v2.js"
    client = Client()
    client.force_login(admin_user)
    src = _frame_src(client.get("/admin/plugins/llm-health-board/").content.decode())
    assert Client().get(src.replace("index.html", "..%2Fplugin.py")).status_code in (400, 404)


def test_rpc_refuses_bad_method_names_and_oversized_bodies(board, admin_user, settings):
    settings.FJORDGATE_PLUGIN_RPC_MAX_BYTES = 100
    client = Client()
    client.force_login(admin_user)
    big = client.post("/admin/plugins/llm-health-board/rpc/board", b"x" * 101, content_type="application/json")
    assert big.status_code == 413 and "too large" in big.json()["error"]
    weird = client.post("/admin/plugins/llm-health-board/rpc/bo%3Crd", b"{}", content_type="application/json")
    assert weird.status_code == 400
    assert client.post("/admin/plugins/nobody/rpc/board", b"{}", content_type="application/json").status_code == 404


def test_portal_page_passes_the_signed_in_user(library, plain_user, django_user_model):
    client = Client()
    client.force_login(plain_user)
    home = client.get("/portal/").content.decode()
    assert 'href="/portal/plugins/prompt-library/"' in home
    page = client.get("/portal/plugins/prompt-library/")
    assert page.status_code == 200
    src = _frame_src(page.content.decode())
    assert Client().get(src).status_code == 200
    rpc = "/portal/plugins/prompt-library/rpc/"
    saved = client.post(
        rpc + "save", json.dumps({"title": "Mine", "text": "Be brief."}), content_type="application/json"
    )
    assert saved.status_code == 200 and saved.json()["prompt"]["title"] == "Mine"
    listed = client.post(rpc + "list", b"{}", content_type="application/json").json()
    assert [p["title"] for p in listed["mine"]] == ["Mine"] and listed["shared"][0]["title"] == "Summarise"
    assert listed["user"] == "alice"
    bob = django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-123456")
    other = Client()
    other.force_login(bob)
    assert other.post(rpc + "list", b"{}", content_type="application/json").json()["mine"] == []
    assert Client().post(rpc + "list", b"{}", content_type="application/json").status_code == 302  # login required
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(plain_user)
    assert strict.post(rpc + "list", b"{}", content_type="application/json").status_code == 403
    admin_link = src.replace("/portal/", "/admin/")
    assert Client().get(admin_link).status_code in (403, 404), "a portal link is not an admin link"


def test_a_namespace_administrator_gets_no_page_of_a_global_plugin(board, django_user_model):
    from control_plane.accounts.models import NamespaceRole

    ns_admin = django_user_model.objects.create_user("nadia", "n@example.com", "pw-nadia-123456", is_staff=True)
    NamespaceRole.objects.create(user=ns_admin, namespace="team-a", role="admin")
    client = Client()
    client.force_login(ns_admin)
    assert "LLM health board" not in client.get("/admin/").content.decode()
    assert client.get("/admin/plugins/llm-health-board/").status_code == 404
    rpc = client.post("/admin/plugins/llm-health-board/rpc/board", b"{}", content_type="application/json")
    assert rpc.status_code == 404
    assert client.get("/admin/resources/").status_code == 200  # an administrator (of team-a) sees resource types


def test_an_isolated_ui_plugin_serves_its_page_and_rpc(admin_user):
    plugin_register(data={"slug": "llm-health-board", "entry_point": "llm-health-board", "isolated": True})
    client = Client()
    client.force_login(admin_user)
    src = _frame_src(client.get("/admin/plugins/llm-health-board/").content.decode())
    index = Client().get(src)
    assert index.status_code == 200 and b"board.js" in index.content
    answer = client.post("/admin/plugins/llm-health-board/rpc/board", b"{}", content_type="application/json")
    assert answer.status_code == 200 and answer.json() == {"llms": []}


def _rpc_keys(redis_url: str) -> list[bytes | str]:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return client.keys("*plugin-rpc*")
    finally:
        client.close()


def test_admin_rpc_is_rate_limited_per_user_in_redis(board, admin_user, django_user_model, redis_cache, settings):
    settings.FJORDGATE_PLUGIN_RPC_PER_MINUTE = 3
    rpc = "/admin/plugins/llm-health-board/rpc/board"
    client = Client()
    client.force_login(admin_user)
    answers = [client.post(rpc, b"{}", content_type="application/json") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused["Content-Type"] == "application/json"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["error"].startswith("Too many calls to this plugin: at most 3 per minute.")
    assert _rpc_keys(redis_cache), "the count lives in Redis, shared by every web process"
    other = django_user_model.objects.create_superuser("carol", "carol@example.com", "pw-carol-123456")
    colleague = Client()
    colleague.force_login(other)
    assert colleague.post(rpc, b"{}", content_type="application/json").status_code == 200  # per user
    settings.FJORDGATE_PLUGIN_RPC_PER_MINUTE = 0  # off
    assert client.post(rpc, b"{}", content_type="application/json").status_code == 200


def test_portal_rpc_is_rate_limited_per_user(library, plain_user, django_user_model, redis_cache, settings):
    settings.FJORDGATE_PLUGIN_RPC_PER_MINUTE = 2
    rpc = "/portal/plugins/prompt-library/rpc/list"
    client = Client()
    client.force_login(plain_user)
    codes = [client.post(rpc, b"{}", content_type="application/json").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = client.post(rpc, b"{}", content_type="application/json")
    assert (
        refused.status_code == 429
        and int(refused["Retry-After"]) >= 1
        and "at most 2 per minute" in refused.json()["error"]
    )
    bob = Client()
    bob.force_login(django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-123456"))
    assert bob.post(rpc, b"{}", content_type="application/json").status_code == 200


def _nested(depth: int) -> bytes:
    """A prompt whose `note` holds lists nested so that the whole body is `depth` levels deep."""
    return b'{"title": "Deep", "text": "x", "note": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_portal_rpc_takes_only_a_json_object_before_any_plugin_runs(library, plain_user):
    from shared_sdk.json_depth import MAX_JSON_DEPTH

    client = Client()
    client.force_login(plain_user)
    rpc = "/portal/plugins/prompt-library/rpc/"
    for body in (b"[]", b"null", b'"a title"', b"42", b"{oops", b"\xff\xfe"):
        answer = client.post(rpc + "save", body, content_type="application/json")
        assert answer.status_code == 400, body
        assert "send a JSON object" in answer.json()["error"], body
    for body in (b"[" * 10_000 + b"]" * 10_000, _nested(10_000), _nested(MAX_JSON_DEPTH + 1)):
        answer = client.post(rpc + "save", body, content_type="application/json")
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert f"deeper than {MAX_JSON_DEPTH} levels" in error and "RecursionError" not in error
    assert client.post(rpc + "list", b"{}", content_type="application/json").json()["mine"] == []
    at_limit = client.post(rpc + "save", _nested(MAX_JSON_DEPTH), content_type="application/json")
    assert at_limit.status_code == 200 and at_limit.json()["prompt"]["title"] == "Deep"
    assert client.post(rpc + "list", b"", content_type="application/json").status_code == 200  # empty: `{}`

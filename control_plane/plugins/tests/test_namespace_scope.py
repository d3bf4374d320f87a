"""A studio plugin of a namespace sees only that namespace (and the global objects, read-only); a global plugin
sees everything. In-process and isolated alike: the host binds the namespace to the services it hands the plugin
(from the plugin's registration), so nothing the plugin sends can widen it.

These tests commit (transaction=True): the studio services run their ORM calls in worker threads with their own
connections, and audit entries are published after their write commits.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from control_plane.accounts.models import NamespaceRole
from control_plane.applications.models import App
from control_plane.applications.services import app_create
from control_plane.catalog.models import Tool
from control_plane.kv.services import kv_read
from control_plane.llms.services import llm_create
from control_plane.plugins.models import OutboundEvent
from control_plane.plugins.runtime import call_plugin
from control_plane.plugins.services import plugin_register
from shared_sdk import PluginCallError
from shared_sdk.messages import Schedule

PLUGINS = "control_plane.plugins.tests.plugins"
MODES = ["in-process", "isolated"]


def _code(mode: str, class_path: str) -> dict:
    if mode == "isolated":
        return {"command": [sys.executable, "-m", "shared_sdk.isolated.run", class_path]}
    return {"import_path": class_path}


# -- events ----------------------------------------------------------------------------------------------------


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _app_names(path: Path) -> set[str]:
    return {line["object_repr"] for line in _lines(path) if line["object_type"] == "applications.app"}


def _wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.django_db(transaction=True)
def test_audit_entries_reach_only_the_plugins_of_their_namespace(tmp_path, mode):
    """The bundled audit_log plugin, registered by a team-a operator, forwards team-a's entries and global
    ones, never team-b's (whose diffs would otherwise leave through team-a's file); a global one forwards all."""
    team_a_log, global_log = tmp_path / "team-a.jsonl", tmp_path / "global.jsonl"
    source = "plugins.audit_log:AuditLog"
    isolated = {"isolated": True} if mode == "isolated" else {}
    plugin_register(
        data={"slug": "log-a", "import_path": source, "namespace": "team-a", "config": {"path": str(team_a_log)}}
        | isolated
    )
    plugin_register(data={"slug": "log-all", "import_path": source, "config": {"path": str(global_log)}} | isolated)

    app_create(data={"name": "b-secret-app", "namespace": "team-b", "metadata": {"owner": "team-b"}})
    app_create(data={"name": "global-app", "namespace": ""})
    app_create(data={"name": "a-app", "namespace": "team-a"})

    # Entries are delivered in order: once the last one reached both files, the earlier ones had their chance.
    _wait_for(lambda: "a-app" in _app_names(team_a_log) and "a-app" in _app_names(global_log))
    assert _app_names(global_log) == {"b-secret-app", "global-app", "a-app"}
    assert _app_names(team_a_log) == {"global-app", "a-app"}
    assert {line["namespace"] for line in _lines(team_a_log)} <= {"team-a", ""}
    assert "b-secret-app" not in team_a_log.read_text()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.django_db(transaction=True)
def test_events_a_namespaced_plugin_publishes_stay_in_its_namespace(mode):
    """Its DOWN events go to its namespace's edges only: "" (every edge) is narrowed to its namespace, another
    namespace is refused. A global plugin still broadcasts."""
    for slug, namespace in (("announcer-a", "team-a"), ("announcer", "")):
        plugin_register(data={"slug": slug, "namespace": namespace, **_code(mode, f"{PLUGINS}:DownAnnouncer")})

    def announce(slug: str, **config) -> None:
        call_plugin(slug, "execute_scheduled_task", Schedule(id="job", config=config))

    announce("announcer-a", topic="cache.flush")
    announce("announcer-a", topic="cache.flush", namespace="team-a")
    with pytest.raises(PluginCallError) as refused:
        announce("announcer-a", topic="cache.flush", namespace="team-b")
    assert "publishes only in its namespace" in str(refused.value)
    announce("announcer", topic="cache.flush")
    announce("announcer-a", topic="cache.flush", source="announcer")  # naming another plugin as the sender
    assert list(OutboundEvent.objects.order_by("id").values_list("namespace", "source")) == [
        ("team-a", "announcer-a"),
        ("team-a", "announcer-a"),
        ("", "announcer"),
        ("team-a", "announcer-a"),
    ]


# -- studio services -------------------------------------------------------------------------------------------


@pytest.fixture
def three_teams(transactional_db, django_user_model) -> dict:
    """One app, LLM, tool and app owner in team-a, team-b and the global objects."""
    ids: dict[str, dict[str, int]] = {"apps": {}, "llms": {}, "users": {}}
    for label, namespace in (("a", "team-a"), ("b", "team-b"), ("global", "")):
        owner = django_user_model.objects.create_user(f"owner-{label}", f"owner-{label}@example.com", "pw-12345678")
        ids["users"][label] = owner.pk
        ids["apps"][label] = app_create(
            data={"name": f"app-{label}", "namespace": namespace, "owner_id": owner.pk, "metadata": {"v": 1}}
        ).pk
        ids["llms"][label] = llm_create(
            data={
                "name": f"LLM {label}",
                "slug": f"llm-{label}",
                "vendor": "mock",
                "api_endpoint": "http://m.example",
                "namespace": namespace,
            }
        ).pk
        Tool.objects.create(name=f"Tool {label}", slug=f"tool-{label}", namespace=namespace)
    operator = django_user_model.objects.create_user("op-a", "op-a@example.com", "pw-12345678")
    NamespaceRole.objects.create(user=operator, namespace="team-a", role="operator")
    ids["users"]["operator-a"] = operator.pk
    return ids


def _probe(slug: str, mode: str, namespace: str, ids: dict) -> dict:
    plugin_register(data={"slug": slug, "namespace": namespace, **_code(mode, f"{PLUGINS}:NamespaceProbe")})
    call_plugin(slug, "execute_scheduled_task", Schedule(id="probe", config=ids))
    raw = kv_read(plugin_slug=slug, key="probe:seen")
    assert raw is not None, "the probe stored nothing"
    return json.loads(raw)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.django_db(transaction=True)
def test_studio_services_answer_a_plugin_within_its_namespace_and_a_global_one_everywhere(three_teams, mode):
    seen = _probe("probe-a", mode, "team-a", three_teams)

    # Reads: another namespace's objects are simply not there (the same answer as an id that does not exist).
    assert seen["get_app"] == {"a": "app-a", "b": None, "global": "app-global"}
    assert seen["list_apps"] == ["app-a", "app-global"]
    assert seen["list_apps_of_b"] == []
    assert seen["get_llm"] == {"a": "llm-a", "b": None, "global": "llm-global"}
    assert seen["list_llms"] == ["llm-a", "llm-global"]
    assert seen["list_tools"] == ["tool-a", "tool-global"]
    assert seen["get_user"] == {
        "a": "owner-a@example.com",  # owns a team-a app
        "operator-a": "op-a@example.com",  # holds a role in team-a
        "b": None,
        "global": None,
    }
    # Writes: its own namespace's app changes; team-b's reads as missing; a global one is refused as read-only.
    for write in ("update_app_metadata", "patch_app_metadata"):
        assert seen[write]["a"] == "ok"
        assert f"no app {three_teams['apps']['b']} in namespace 'team-a'" in seen[write]["b"]
        assert "read-only" in seen[write]["global"] and "global" in seen[write]["global"]
    apps = {app.name: app.metadata for app in App.objects.all()}
    assert apps["app-a"] == {"probed": True, "patched": True}
    assert apps["app-b"] == {"v": 1} and apps["app-global"] == {"v": 1}

    # A global plugin (namespace "") keeps reaching every namespace, and may write global objects.
    seen = _probe("probe-global", mode, "", three_teams)
    assert seen["get_app"] == {"a": "app-a", "b": "app-b", "global": "app-global"}
    assert seen["list_apps"] == ["app-a", "app-b", "app-global"]
    assert seen["list_apps_of_b"] == ["app-b"]
    assert seen["list_llms"] == ["llm-a", "llm-b", "llm-global"]
    assert seen["list_tools"] == ["tool-a", "tool-b", "tool-global"]
    assert None not in seen["get_user"].values()
    assert set(seen["update_app_metadata"].values()) == {"ok"}
    assert set(seen["patch_app_metadata"].values()) == {"ok"}
    assert all(app.metadata == {"probed": True, "patched": True} for app in App.objects.all())

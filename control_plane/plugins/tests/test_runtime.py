"""The studio plugin runtime end to end: `call_plugin` -> plugin -> studio KV and studio services -> PostgreSQL.

The wiring tests commit (transaction=True): the studio services run their ORM calls in worker threads with their
own connections, as they do in the web process and the Celery worker, so they only see committed rows.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from control_plane.applications.models import App
from control_plane.applications.services import app_create
from control_plane.audit.models import AuditEntry
from control_plane.kv.services import kv_list, kv_read
from control_plane.plugins.models import Plugin
from control_plane.plugins.runtime import call_plugin
from control_plane.plugins.services import plugin_register
from control_plane.sync.models import ConfigChange
from shared_sdk import Context, PluginCallError, Runtime
from shared_sdk.messages import Schedule

PLUGINS = "control_plane.plugins.tests.plugins"


def _slow(slug: str, *, timeout_ms: int) -> Plugin:
    return plugin_register(data={"slug": slug, "import_path": f"{PLUGINS}:SlowScheduler", "timeout_ms": timeout_ms})


def _sleep(seconds: float) -> Schedule:
    return Schedule(id="job", config={"sleep_s": seconds})


@pytest.mark.django_db
def test_call_timeout_override_replaces_a_shorter_plugin_timeout():
    _slow("slow", timeout_ms=200)
    with pytest.raises(PluginCallError) as err:  # the plugin's own timeout applies by default
        call_plugin("slow", "execute_scheduled_task", _sleep(0.6))
    assert err.value.kind == "timeout" and "0.2s" in err.value.detail
    assert call_plugin("slow", "execute_scheduled_task", _sleep(0.6), call_timeout_s=3) is None
    with pytest.raises(PluginCallError) as err:  # ... and the override was for that call only
        call_plugin("slow", "execute_scheduled_task", _sleep(0.6))
    assert err.value.kind == "timeout"


@pytest.mark.django_db
def test_call_timeout_override_also_shortens_and_the_outer_wait_still_caps():
    _slow("slow", timeout_ms=30_000)
    with pytest.raises(PluginCallError) as err:
        call_plugin("slow", "execute_scheduled_task", _sleep(2), call_timeout_s=0.3)
    assert err.value.kind == "timeout" and "0.3s" in err.value.detail
    with pytest.raises(PluginCallError) as err:  # `timeout_s` bounds the wait whatever the call's own limit
        call_plugin("slow", "execute_scheduled_task", _sleep(2), call_timeout_s=10, timeout_s=0.3)
    assert err.value.kind == "timeout"
    with pytest.raises(ValueError):
        call_plugin("slow", "execute_scheduled_task", _sleep(0), call_timeout_s=0)


def _probe(slug: str, **where) -> Plugin:
    return plugin_register(data={"slug": slug, "namespace": "ops", **where})


def _run_probe(slug: str) -> dict:
    ctx = Context(runtime=Runtime.STUDIO, request_id="exec-1", namespace="ops")
    call_plugin(slug, "execute_scheduled_task", Schedule(id="probe", execution_id="exec-1"), ctx=ctx)
    raw = kv_read(plugin_slug=slug, key="probe:result")
    assert raw is not None, "the plugin stored no result"
    return json.loads(raw)


def _assert_studio_wiring(slug: str, result: dict) -> None:
    first = App.objects.order_by("pk").first()  # list_apps pages by id: the plugin tags the first one
    assert result["plugin_slug"] == slug and result["namespace"] == "ops"
    assert result["apps"] == ["alpha", "beta"]  # listed through ctx.services.studio over the ORM
    assert result["keys"] == ["probe:marker"]  # listed by prefix in the plugin's own KV namespace
    assert kv_list(plugin_slug=slug, prefix="probe:") == ["probe:marker", "probe:result"]
    assert kv_read(plugin_slug=slug, key="probe:marker") == b"written by exec-1"
    assert kv_read(plugin_slug="someone-else", key="probe:marker") is None
    # The metadata write went through app_update: stored, and recorded for the edges of the app's namespace.
    assert first is not None and first.metadata["probed_by"] == "exec-1"
    assert result["tagged"] == {"app_id": first.pk, "metadata": first.metadata}
    assert ConfigChange.objects.filter(namespace="ops", reason=f"app {first.pk} updated").exists()
    # ... and the audit trail names the plugin as the writer, whichever process it runs in.
    [entry] = AuditEntry.objects.filter(object_type="applications.app", object_id=str(first.pk), action="update")
    assert (entry.actor_kind, entry.actor_label, entry.source) == ("plugin", slug, "plugin")
    assert entry.changes["metadata"] == [{}, {"probed_by": "exec-1"}] and entry.namespace == "ops"


@pytest.fixture
def two_apps(transactional_db):
    for name in ("beta", "alpha"):
        app_create(data={"name": name, "namespace": "ops"})


@pytest.mark.django_db(transaction=True)
def test_in_process_plugin_reaches_studio_kv_and_services(two_apps):
    _probe("probe", import_path=f"{PLUGINS}:StudioProbe")
    result = _run_probe("probe")
    _assert_studio_wiring("probe", result)


@pytest.mark.django_db(transaction=True)
def test_isolated_plugin_reaches_studio_kv_and_services_through_the_broker(two_apps):
    command = [sys.executable, "-m", "shared_sdk.isolated.run", f"{PLUGINS}:StudioProbe"]
    _probe("probe-isolated", command=command)
    result = _run_probe("probe-isolated")
    assert result["pid"] != os.getpid()  # it really ran in its own process
    _assert_studio_wiring("probe-isolated", result)


@pytest.mark.django_db(transaction=True)
def test_isolated_plugin_gets_a_call_timeout_longer_than_its_process_was_spawned_with():
    """The SDK's child process cuts calls at about 1.5 x its spawn timeout + 1 s; an override beyond that respawns
    it with the longer timeout instead of being cut short."""
    command = [sys.executable, "-m", "shared_sdk.isolated.run", f"{PLUGINS}:SlowScheduler"]
    plugin_register(data={"slug": "slow-isolated", "command": command, "timeout_ms": 200})
    with pytest.raises(PluginCallError) as err:
        call_plugin("slow-isolated", "execute_scheduled_task", _sleep(1.6))
    assert err.value.kind == "timeout"
    # 1.6 s is past the child's own deadline for a 0.2 s spawn timeout (0.2 * 1.5 + 1 = 1.3 s)
    assert call_plugin("slow-isolated", "execute_scheduled_task", _sleep(1.6), call_timeout_s=5) is None
    with pytest.raises(PluginCallError) as err:  # the plugin's other calls keep their own timeout
        call_plugin("slow-isolated", "execute_scheduled_task", _sleep(0.6))
    assert err.value.kind == "timeout" and "0.2s" in err.value.detail


@pytest.mark.django_db(transaction=True)
def test_operator_scope_grant_lets_a_plugin_without_manifest_read_apps_and_is_validated(two_apps):
    """No manifest means baseline scopes only: listing apps is refused until the operator grants `apps.read`.
    The grant is validated (a typo is an error, not a silent no-op) and ships to edges in the snapshot."""
    from django.core.exceptions import ValidationError

    from control_plane.plugins.services import plugin_update
    from control_plane.sync.selectors import snapshot_build

    plugin = plugin_register(data={"slug": "lister", "import_path": f"{PLUGINS}:AppLister"})
    with pytest.raises(PluginCallError) as refused:
        call_plugin("lister", "execute_scheduled_task", Schedule(id="job"))
    assert "apps.read" in str(refused.value)

    with pytest.raises(ValidationError) as typo:
        plugin_update(plugin=plugin, data={"extra_scopes": ["apps.raed"]})
    assert "apps.raed" in str(typo.value)

    plugin_update(plugin=Plugin.objects.get(slug="lister"), data={"extra_scopes": ["apps.read"]})
    call_plugin("lister", "execute_scheduled_task", Schedule(id="job"))
    assert sorted(json.loads(kv_read(plugin_slug="lister", key="seen"))) == sorted(
        App.objects.values_list("name", flat=True)
    )
    plugin_register(
        data={
            "slug": "edge-side",
            "import_path": "control_plane.hooks.tests.plugins:EdgeSidePlugin",
            "extra_scopes": ["budget.read"],
        }
    )
    shipped = {p.slug: p for p in snapshot_build(namespace="").plugins}
    assert shipped["edge-side"].extra_scopes == ["budget.read"]  # edges apply the same grant

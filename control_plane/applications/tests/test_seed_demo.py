from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from control_plane.applications.models import App, Credential
from control_plane.sync.selectors import snapshot_build
from shared_sdk.snapshot import hash_credential

KEY = "fjg_demo_key_0123456789abcdefghijklmnop"


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_edge_ready():
    outputs = []
    for _ in range(2):
        out = StringIO()
        call_command(
            "seed_demo",
            "--namespace",
            "demo",
            "--upstream-url",
            "http://127.0.0.1:9999/v1",
            "--api-key",
            KEY,
            "--json",
            stdout=out,
        )
        outputs.append(json.loads(out.getvalue()))
    assert outputs[0] == outputs[1]
    assert App.objects.count() == 1 and Credential.objects.count() == 1
    snap = snapshot_build(namespace="demo")
    assert [c.key_hash for c in snap.credentials] == [hash_credential(KEY)]
    app = snap.apps[0]
    assert app.approved and app.active and app.llm_ids == [snap.llms[0].id]
    assert snap.llms[0].default_model == "mock-gpt" and snap.llms[0].api_base == "http://127.0.0.1:9999/v1"
    assert any(p.model == "mock-gpt" for p in snap.prices)


@pytest.mark.django_db
def test_seed_demo_rejects_short_key_clearly():
    with pytest.raises(CommandError, match="at least 20 characters"):
        call_command("seed_demo", "--upstream-url", "http://127.0.0.1:9999/v1", "--api-key", "short")


def _seed(out: StringIO | None = None) -> None:
    call_command(
        "seed_demo",
        "--namespace",
        "demo",
        "--upstream-url",
        "http://127.0.0.1:9999/v1",
        "--api-key",
        KEY,
        stdout=out or StringIO(),
    )


@pytest.mark.django_db(transaction=True)
def test_seed_demo_registers_usage_report_with_a_schedule_that_fires_within_a_minute(monkeypatch, client):
    """`fjordgate up` seeds the demo; its every-minute usage report must produce a completed run and a report."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from control_plane.kv.services import kv_read
    from control_plane.plugins.models import Plugin
    from control_plane.schedules import services
    from control_plane.schedules.models import PluginSchedule, ScheduleRun

    monkeypatch.setattr(services, "_enqueue", lambda runs: None)  # the test executes the runs itself
    before = timezone.now()
    _seed()
    _seed()  # idempotent: one plugin, one demo schedule
    plugin = Plugin.objects.get(slug="usage-report")
    assert plugin.entry_point == "usage-report" and plugin.active
    schedules = {s.schedule_id: s for s in PluginSchedule.objects.filter(plugin=plugin)}
    assert set(schedules) == {"daily", "demo-every-minute"}  # the manifest's own schedule, and the demo copy
    demo = schedules["demo-every-minute"]
    assert demo.name == "demo: usage report every minute" and demo.enabled
    assert demo.timeout_seconds == schedules["daily"].timeout_seconds
    assert before < demo.next_run_at <= before + timezone.timedelta(seconds=61)

    # The dispatcher (as beat runs it) claims the first fire time; a worker executes it.
    claimed = services.schedules_dispatch_due(now=demo.next_run_at)  # system jobs may be due too
    run_id = ScheduleRun.objects.get(pk__in=claimed, schedule=demo).pk
    run = services.schedule_run_execute(run_id=run_id, worker="test")
    assert run is not None and (run.status, run.error) == (ScheduleRun.Status.COMPLETED, "")
    assert run.scheduled_for == demo.next_run_at and run.trigger == ScheduleRun.Trigger.SCHEDULE

    report = json.loads(kv_read(plugin_slug="usage-report", key="report:latest"))
    assert report["execution_id"] == run.execution_id
    assert [(a["name"], a["namespace"], a["active"]) for a in report["apps"]] == [("demo", "demo", True)]

    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-ops-123456")
    client.force_login(staff)
    page = client.get("/admin/schedules/pluginschedule/usage-reports/")
    assert page.status_code == 200 and report["generated_at"].encode() in page.content
    runs_page = client.get("/admin/schedules/schedulerun/")
    assert runs_page.status_code == 200 and b"usage-report/demo-every-minute" in runs_page.content


@pytest.mark.django_db
def test_seed_demo_offers_the_demo_llm_to_its_members_in_the_portal_and_chat(client):
    """A fresh stack's portal said "None: ask an administrator" and its chat had nothing to talk to."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from control_plane.accounts.models import Catalogue

    admin = get_user_model().objects.create_user("admin", password="pw-Demo-123456!", is_staff=True, is_superuser=True)
    other = Group.objects.create(name="ops")
    admin.groups.add(other)
    for _ in range(2):  # idempotent
        call_command(
            "seed_demo",
            "--upstream-url",
            "http://127.0.0.1:9999/v1",
            "--api-key",
            KEY,
            "--member",
            "admin",
            stdout=StringIO(),
        )
    group = Group.objects.get(name="Demo users")
    assert list(Catalogue.objects.get(group=group).llms.values_list("slug", flat=True)) == ["demo-mock"]
    assert set(admin.groups.values_list("name", flat=True)) == {"ops", "Demo users"}  # added to, nothing taken

    client.force_login(admin)
    portal = client.get("/portal/").content.decode()
    assert "Demo mock LLM" in portal and "ask an administrator" not in portal
    chat = client.get("/portal/chat/").content.decode()
    assert "Demo mock LLM" in chat and "ask an administrator" not in chat


@pytest.mark.django_db
def test_seed_demo_names_a_member_that_does_not_exist():
    with pytest.raises(CommandError, match="No such user: nobody"):
        call_command("seed_demo", "--upstream-url", "http://127.0.0.1:9999/v1", "--api-key", KEY, "--member", "nobody")

"""The schedules API (/api/v1/schedules/) and admin pages, through Django's test client on PostgreSQL."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from control_plane.kv.models import KVEntry
from control_plane.plugins.models import Plugin
from control_plane.schedules.models import PluginSchedule, ScheduleRun


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("ops", "ops@example.com", "pw-123456", is_staff=True, is_superuser=True)


@pytest.fixture
def api(staff):
    client = APIClient()
    client.force_authenticate(staff)
    return client


@pytest.fixture
def plugin(db):
    return Plugin.objects.create(
        slug="reporter", name="Reporter", import_path="plugins.usage_report.plugin:UsageReport"
    )


def test_create_shows_the_next_fire_times(api, plugin):
    body = {
        "plugin": "reporter",
        "schedule_id": "daily",
        "name": "Daily",
        "cron": "0 3 * * *",
        "timezone": "Europe/Oslo",
    }
    response = api.post("/api/v1/schedules/", body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert len(data["upcoming_fire_times"]) == 5 and data["next_run_at"] == data["upcoming_fire_times"][0]
    assert data["overlap_policy"] == "skip" and data["timeout_seconds"] == 60


def test_bad_cron_and_timezone_get_field_errors(api, plugin):
    body = {"plugin": "reporter", "schedule_id": "x", "name": "x", "cron": "0 25 * * *", "timezone": "Mars/Base"}
    response = api.post("/api/v1/schedules/", body, format="json")
    assert response.status_code == 400
    fields = response.json()["extra"]["fields"]  # the project's DRF error shape
    assert "out of range" in fields["cron"][0] and "IANA" in fields["timezone"][0]


def test_run_now_queues_a_manual_run_and_runs_are_filterable(api, plugin, django_capture_on_commit_callbacks):
    schedule = PluginSchedule.objects.create(plugin=plugin, schedule_id="daily", name="d", cron="0 3 * * *")
    response = api.post(f"/api/v1/schedules/{schedule.pk}/run/")
    assert response.status_code == 202 and response.json()["trigger"] == "manual"
    assert ScheduleRun.objects.get(schedule=schedule).triggered_by == "ops"
    assert api.get("/api/v1/schedules/runs/?status=pending&plugin=reporter").json()["count"] == 1
    assert api.get("/api/v1/schedules/runs/?status=completed").json()["count"] == 0
    assert api.get(f"/api/v1/schedules/{schedule.pk}/runs/").json()["count"] == 1


def test_system_jobs_are_listed_and_cannot_be_deleted(api):
    listed = api.get("/api/v1/schedules/?system_job=kv_purge_expired").json()
    assert listed["count"] == 1
    response = api.delete(f"/api/v1/schedules/{listed['results'][0]['id']}/")
    assert response.status_code == 400 and "cannot be deleted" in json.dumps(response.json())


def test_the_api_is_for_staff_only(db, plugin):
    user = get_user_model().objects.create_user("dev", "dev@example.com", "pw-123456")
    client = APIClient()
    assert client.get("/api/v1/schedules/").status_code in (401, 403)
    client.force_authenticate(user)
    assert client.get("/api/v1/schedules/").status_code == 403


def test_admin_lists_next_fire_times_and_runs_now(client, staff, plugin):
    client.force_login(staff)
    schedule = PluginSchedule.objects.create(plugin=plugin, schedule_id="daily", name="d", cron="0 3 * * *")
    page = client.get("/admin/schedules/pluginschedule/")
    assert page.status_code == 200 and b"Next fire" in page.content
    detail = client.get(f"/admin/schedules/pluginschedule/{schedule.pk}/change/")
    assert b"Next fire times" in detail.content and b"UTC)" in detail.content
    response = client.post(
        "/admin/schedules/pluginschedule/", {"action": "run_now", "_selected_action": [schedule.pk]}, follow=True
    )
    assert b"Queued 1 run" in response.content
    assert ScheduleRun.objects.filter(schedule=schedule, trigger="manual").count() == 1
    runs = client.get("/admin/schedules/schedulerun/?status__exact=pending")
    assert runs.status_code == 200 and b"reporter/daily" in runs.content


def test_admin_enable_and_disable_say_what_they_did(client, staff, plugin):
    """Both actions changed the schedules and answered with the bare list: nothing told the operator it worked."""
    client.force_login(staff)
    schedules = [
        PluginSchedule.objects.create(plugin=plugin, schedule_id=sid, name=sid, cron="0 3 * * *", enabled=False)
        for sid in ("a", "b")
    ]
    selected = [s.pk for s in schedules]
    response = client.post(
        "/admin/schedules/pluginschedule/", {"action": "enable", "_selected_action": selected}, follow=True
    )
    assert b"Enabled: 2" in response.content
    assert all(PluginSchedule.objects.filter(pk__in=selected).values_list("enabled", flat=True))
    response = client.post(
        "/admin/schedules/pluginschedule/", {"action": "disable", "_selected_action": selected[:1]}, follow=True
    )
    assert b"Disabled: 1" in response.content
    assert not PluginSchedule.objects.get(pk=selected[0]).enabled


def test_admin_form_shows_cron_errors(client, staff, plugin):
    client.force_login(staff)
    response = client.post(
        "/admin/schedules/pluginschedule/add/",
        {
            "plugin": plugin.pk,
            "schedule_id": "bad",
            "name": "bad",
            "cron": "every day",
            "timezone": "UTC",
            "timeout_seconds": 60,
            "overlap_policy": "skip",
            "config": "{}",
        },
    )
    assert response.status_code == 200 and b"A cron expression has 5 fields" in response.content
    assert not PluginSchedule.objects.filter(schedule_id="bad").exists()


def test_admin_shows_the_latest_usage_report(client, staff, plugin):
    client.force_login(staff)
    report = {
        "date": "2025-01-04",
        "generated_at": "t",
        "app_count": 1,
        "active_app_count": 1,
        "apps": [
            {
                "name": "alpha-app",
                "namespace": "",
                "active": True,
                "monthly_budget": "50",
                "llm_count": 2,
                "tool_count": 0,
            }
        ],
    }
    KVEntry.objects.create(plugin_slug="reporter", key="report:latest", value=json.dumps(report).encode())
    page = client.get("/admin/schedules/pluginschedule/usage-reports/")
    assert page.status_code == 200 and b"alpha-app" in page.content and b"2025-01-04" in page.content

"""One object of every kind the API and the admin serve, written through the services (for the input sweeps)."""

from __future__ import annotations

from decimal import Decimal


def seed_one_of_each(admin_user) -> None:
    """One object of every kind the API serves, written through the services."""
    import time

    from django.contrib.auth.models import Group

    from control_plane.accounts.roles import namespace_role_grant
    from control_plane.accounts.services import group_save
    from control_plane.analytics.services import analytics_ingest_batches
    from control_plane.applications.services import app_create, credential_create
    from control_plane.budgets.services import budget_create
    from control_plane.catalog.services import datasource_create, model_price_upsert, tag_get_or_create, tool_create
    from control_plane.edges.services import edge_record_heartbeat
    from control_plane.kv.services import kv_write
    from control_plane.llms.services import llm_create
    from control_plane.plugins.services import plugin_register
    from control_plane.schedules.services import schedule_create, schedule_run_now
    from control_plane.sync.services import config_change_record
    from shared_sdk.messages import AnalyticsRecord
    from shared_sdk.sync_protocol import TelemetryBatch

    llm = llm_create(
        data={"name": "L", "slug": "l", "vendor": "mock", "api_endpoint": "http://m.local", "api_key": "k"}
    )
    tool_create(data={"name": "T", "slug": "t"})
    datasource_create(data={"name": "D", "slug": "d"})
    tag_get_or_create(name="tag")
    model_price_upsert(data={"vendor": "mock", "model": "m", "prompt_per_million": "1"})
    group_save(name="team")
    namespace_role_grant(user=type(admin_user).objects.create_user("viewer"), namespace="demo", role="viewer")
    admin_user.groups.add(Group.objects.get(name="team"))
    app = app_create(data={"name": "A", "llm_ids": [llm.pk], "approved": True})
    credential_create(app=app, name="key")
    budget_create(data={"scope": "app", "app": app, "limit": "10"})
    plugin = plugin_register(data={"slug": "slow", "import_path": "control_plane.plugins.tests.plugins:SlowScheduler"})
    schedule_run_now(schedule=schedule_create(plugin=plugin, schedule_id="nightly", cron="0 3 * * *"))
    kv_write(plugin_slug="slow", key="k", value=b"v")
    edge_record_heartbeat(edge_id="edge-1", namespace="demo", version=1, checksum="c")
    config_change_record(namespace="", reason="seed")
    analytics_ingest_batches(
        [
            TelemetryBatch(
                batch_id="b1",
                edge_id="edge-1",
                namespace="",
                created_at=time.time(),
                analytics=[
                    AnalyticsRecord(
                        record_id="r1",
                        request_id="q1",
                        app_id=app.pk,
                        llm_id=llm.pk,
                        model="m",
                        vendor="mock",
                        status_code=200,
                        cost=Decimal("0.01"),
                        currency="USD",
                        timestamp=time.time(),
                    )
                ],
            )
        ]
    )

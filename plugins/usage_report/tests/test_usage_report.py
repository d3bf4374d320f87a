"""The usage_report plugin through the SDK's real host with in-memory studio services."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from shared_sdk.messages import App, Schedule
from shared_sdk.testing import InMemoryStudio, PluginHarness


def _schedule(day: str) -> Schedule:
    fired = datetime.fromisoformat(f"{day}T00:05:00").replace(tzinfo=UTC)
    return Schedule(id="daily", cron="5 0 * * *", execution_id=f"exec-{day}", scheduled_for=fired.timestamp())


async def test_writes_a_dated_report_per_app_and_prunes_old_ones() -> None:
    async with PluginHarness("plugins.usage_report.plugin:UsageReport", runtime="studio", config={"keep_days": 2}) as h:
        studio = h.services.studio
        assert isinstance(studio, InMemoryStudio)
        studio.apps[1] = App(
            id=1, name="beta", namespace="", is_active=True, llm_ids=[1, 2], monthly_budget=Decimal("50")
        )
        studio.apps[2] = App(id=2, name="alpha", namespace="", is_active=False)
        for day in ("2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"):
            await h.call("execute_scheduled_task", _schedule(day))
        keys = sorted(await h.services.kv.list("report:"))
        assert keys == ["report:2025-01-02", "report:2025-01-03", "report:2025-01-04", "report:latest"]
        latest = json.loads(await h.services.kv.read("report:latest") or b"null")
        assert latest["date"] == "2025-01-04" and latest["execution_id"] == "exec-2025-01-04"
        assert latest["app_count"] == 2 and latest["active_app_count"] == 1
        assert [a["name"] for a in latest["apps"]] == ["alpha", "beta"]
        assert latest["apps"][1]["monthly_budget"] == "50" and latest["apps"][1]["llm_count"] == 2


async def test_manifest_ships_the_daily_schedule() -> None:
    async with PluginHarness("plugins.usage_report.plugin:UsageReport", runtime="studio") as h:
        manifest = await h.call("get_manifest")
        assert [(s.id, s.cron) for s in manifest.schedules] == [("daily", "5 0 * * *")]

"""usage_report: a scheduled studio plugin that writes a daily per-app report to the studio KV.

Each run lists every app through the studio services and stores one JSON report under `report:<YYYY-MM-DD>` (the
fire date in the schedule's timezone) plus `report:latest`; reports older than `keep_days` are deleted, so the KV
does not grow without bound. The admin shows the latest report (Schedules -> Usage reports).

What a report holds per app is what the studio services expose to plugins today: name, namespace, active flag,
monthly budget and linked LLMs/tools. Spend and token counts are not yet part of the plugin SDK's studio services.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared_sdk import BasePlugin, ConfigProvider, Context, KVStore, ManifestProvider, SchedulerPlugin
from shared_sdk.messages import App, ManifestPermissions, PluginManifest, Schedule

REPORT_PREFIX = "report:"
LATEST_KEY = "report:latest"
_PAGE = 200


class UsageReport(BasePlugin, SchedulerPlugin, ManifestProvider, ConfigProvider):
    name = "usage-report"
    version = "1.0.0"
    description = "Daily per-app report written to the studio KV; old reports are pruned."

    def get_config_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"keep_days": {"type": "integer", "minimum": 1, "maximum": 3650, "default": 30}},
            "additionalProperties": False,
        }

    def get_manifest(self) -> PluginManifest:
        return PluginManifest(
            id="usage-report",
            version=self.version,
            name="Usage report",
            description=self.description,
            permissions=ManifestPermissions(kv=True, services=["apps.read", "kv.readwrite"]),
            schedules=[Schedule(id="daily", name="Daily app report", cron="5 0 * * *", timeout_seconds=300)],
        )

    async def execute_scheduled_task(self, ctx: Context, schedule: Schedule) -> None:
        zone = ZoneInfo(schedule.timezone or "UTC")
        fired = datetime.fromtimestamp(schedule.scheduled_for or datetime.now(UTC).timestamp(), UTC).astimezone(zone)
        studio, kv = ctx.services.studio, ctx.services.kv  # type: ignore[union-attr]  # bound for every call
        apps: list[App] = []
        page = 1
        while True:
            batch = await studio.list_apps(page=page, limit=_PAGE)
            apps.extend(batch)
            if len(batch) < _PAGE:
                break
            page += 1
        report = {
            "date": fired.date().isoformat(),
            "generated_at": datetime.now(UTC).isoformat(),
            "execution_id": schedule.execution_id,
            "app_count": len(apps),
            "active_app_count": sum(1 for app in apps if app.is_active),
            "apps": [
                {
                    "id": app.id,
                    "name": app.name,
                    "namespace": app.namespace,
                    "active": app.is_active,
                    "monthly_budget": str(app.monthly_budget) if app.monthly_budget is not None else None,
                    "llm_count": len(app.llm_ids),
                    "tool_count": len(app.tool_ids),
                }
                for app in sorted(apps, key=lambda a: (a.namespace, a.name))
            ],
        }
        body = json.dumps(report, sort_keys=True).encode()
        await kv.write(f"{REPORT_PREFIX}{report['date']}", body)
        await kv.write(LATEST_KEY, body)
        keep_days = int((getattr(self, "config", None) or {}).get("keep_days", 30))
        await self._prune(kv, fired.date().toordinal() - keep_days)

    async def _prune(self, kv: KVStore, oldest_ordinal: int) -> None:
        for key in await kv.list(REPORT_PREFIX):
            day = key[len(REPORT_PREFIX) :]
            try:
                ordinal = datetime.fromisoformat(day).date().toordinal()
            except ValueError:
                continue  # report:latest
            if ordinal < oldest_ordinal:
                await kv.delete(key)

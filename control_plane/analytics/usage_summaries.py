"""The usage summaries that the bundled `usage_summary` plugin's studio half keeps in its studio KV, added up.

The control plane reads the plugin's stored records here instead of importing the plugin: a bundled plugin is
one more plugin to the control plane (it may be absent, replaced or isolated), and plugins may not import Django.
The contract between the two is the stored format: keys `summary:<correlation id>`, each value one JSON summary
(`namespace`, `edge_id`, `window_end` and `users`: per (app, user) `requests`, `tokens`, `cost`, `currency`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

# Import path of the plugin whose KV holds the summaries, and the prefix of its keys (see the plugin's README).
USAGE_SUMMARY_IMPORT_PATH = "plugins.usage_summary.plugin:UsageSummary"
USAGE_SUMMARY_ENTRY_POINT = "usage-summary"
SUMMARY_PREFIX = "summary:"


def totals(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add summaries up per (namespace, app, user, currency): requests, tokens, cost, edges seen, last seen."""
    rows: dict[tuple[str, int | None, int | None, str], dict[str, Any]] = {}
    for record in records:
        for user in record.get("users", []):
            key = (record.get("namespace", ""), user.get("app_id"), user.get("user_id"), user.get("currency", "USD"))
            row = rows.setdefault(
                key,
                {
                    "namespace": key[0],
                    "app_id": key[1],
                    "user_id": key[2],
                    "currency": key[3],
                    "requests": 0,
                    "tokens": 0,
                    "cost": Decimal("0"),
                    "edges": set(),
                    "last_seen": 0.0,
                },
            )
            row["requests"] += int(user.get("requests", 0))
            row["tokens"] += int(user.get("tokens", 0))
            row["cost"] += Decimal(str(user.get("cost", "0")))
            row["edges"].add(record.get("edge_id", ""))
            row["last_seen"] = max(row["last_seen"], float(record.get("window_end", 0)))
    return [
        {**row, "edges": sorted(row["edges"])}
        for row in sorted(rows.values(), key=lambda r: (r["namespace"], r["app_id"] or 0, r["user_id"] or 0))
    ]

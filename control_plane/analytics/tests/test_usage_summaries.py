"""The admin page's arithmetic over the usage_summary plugin's stored records (the plugin stores them: its own
tests; through real processes: tests/e2e/test_processes_payloads.py)."""

from __future__ import annotations

from decimal import Decimal

from control_plane.analytics.usage_summaries import totals


def test_totals_add_up_each_user_across_edges_and_windows_per_namespace() -> None:
    records = [
        {
            "namespace": "ns",
            "edge_id": "e1",
            "window_end": 10.0,
            "users": [
                {"app_id": 3, "user_id": 1, "requests": 2, "tokens": 15, "cost": "1.0", "currency": "USD"},
                {"app_id": 3, "user_id": 2, "requests": 1, "tokens": 7, "cost": "0.5", "currency": "USD"},
            ],
        },
        {
            "namespace": "ns",
            "edge_id": "e2",
            "window_end": 20.0,
            "users": [{"app_id": 3, "user_id": 1, "requests": 1, "tokens": 5, "cost": "0.25", "currency": "USD"}],
        },
        {
            "namespace": "other",
            "edge_id": "e3",
            "window_end": 5.0,
            "users": [{"app_id": 3, "user_id": 1, "requests": 4, "tokens": 1, "cost": "2", "currency": "USD"}],
        },
    ]
    rows = totals(records)
    assert [
        (r["namespace"], r["user_id"], r["requests"], r["tokens"], r["cost"], r["edges"], r["last_seen"]) for r in rows
    ] == [
        ("ns", 1, 3, 20, Decimal("1.25"), ["e1", "e2"], 20.0),
        ("ns", 2, 1, 7, Decimal("0.5"), ["e1"], 10.0),
        ("other", 1, 4, 1, Decimal("2"), ["e3"], 5.0),
    ]

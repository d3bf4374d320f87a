"""The admin dashboard: usage and spend per app and per LLM over time, drawn as server-side SVG charts.

Reads the analytics tables the bridge fills (`control_plane.analytics`); SVG keeps the page free of JavaScript
and of any CDN, so it works on an air-gapped control plane. Like every admin page it shows only what the
user's namespace roles let them view (`accounts.access`): traffic, app and LLM names of other namespaces would
tell one team about another's spend.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet, Sum
from django.db.models.functions import TruncDay
from django.template.response import TemplateResponse
from django.utils import timezone

PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be123c", "#4d7c0f"]
WIDTH, HEIGHT, PAD = 720, 220, 40


def _series(days: int, group_field: str, names: dict[int, str], events: QuerySet) -> dict:
    since = timezone.now() - timedelta(days=days)
    rows = (
        events.filter(timestamp__gte=since)
        .annotate(day=TruncDay("timestamp"))
        .values("day", group_field)
        .annotate(requests=Count("id"), tokens=Sum("total_tokens"), cost=Sum("cost"))
        .order_by("day")
    )
    day_list = [(since + timedelta(days=i + 1)).date() for i in range(days)]
    by_key: dict = defaultdict(
        lambda: {"requests": defaultdict(int), "tokens": defaultdict(int), "cost": defaultdict(Decimal)}
    )
    for row in rows:
        key = row[group_field]
        day = row["day"].date()
        by_key[key]["requests"][day] += row["requests"]
        by_key[key]["tokens"][day] += row["tokens"] or 0
        by_key[key]["cost"][day] += row["cost"] or Decimal("0")
    charts = {}
    for metric in ("requests", "tokens", "cost"):
        lines = []
        for index, (key, values) in enumerate(sorted(by_key.items(), key=lambda kv: str(kv[0]))):
            points = [float(values[metric].get(d, 0)) for d in day_list]
            lines.append(
                {
                    "label": names.get(key, f"#{key}" if key is not None else NO_KEY_LABELS.get(group_field, "none")),
                    "color": PALETTE[index % len(PALETTE)],
                    "points": points,
                    "total": _display(metric, sum(values[metric].values())),
                }
            )
        charts[metric] = _svg(lines, day_list)
        charts[metric]["max_label"] = _display(metric, Decimal(str(charts[metric]["max"] if lines else 0)))
    return charts


NO_KEY_LABELS = {"app_id": "no app (chat, plugins)"}
"""Rows without an app are the studio's own LLM calls (the chat, plugins): saying so, not "unknown"."""


def _display(metric: str, total: Decimal | int) -> str:
    """Counts as integers; spend with six decimals, since one request often costs a few millionths."""
    return f"{Decimal(total):.6f}" if metric == "cost" else f"{int(total):,}"


def _svg(lines: list[dict], days: list) -> dict:
    top = max((max(line["points"]) for line in lines if line["points"]), default=0.0) or 1.0
    step = (WIDTH - 2 * PAD) / max(len(days) - 1, 1)
    for line in lines:
        line["path"] = " ".join(
            f"{PAD + i * step:.1f},{HEIGHT - PAD - (v / top) * (HEIGHT - 2 * PAD):.1f}"
            for i, v in enumerate(line["points"])
        )
    return {
        "lines": lines,
        "max": top,
        "first": days[0] if days else "",
        "last": days[-1] if days else "",
        "width": WIDTH,
        "height": HEIGHT,
        "pad": PAD,
        "baseline": HEIGHT - PAD,
    }


def dashboard_view(request):
    from django.contrib import admin

    from control_plane.accounts.admin_access import request_user_access
    from control_plane.analytics.models import AnalyticsEvent
    from control_plane.applications.models import App
    from control_plane.llms.models import LLM

    access = request_user_access(request)
    if not access.administers_anything:
        raise PermissionDenied("The dashboard is for administrators of some namespace.")
    events = access.filter_visible(AnalyticsEvent.objects.all())

    try:
        days = min(max(int(request.GET.get("days", 14)), 2), 90)
    except ValueError:
        days = 14
    context = {
        **admin.site.each_context(request),
        "title": "Usage and spend",
        "days": days,
        "per_app": _series(days, "app_id", dict(access.filter_visible(App.objects.values_list("pk", "name"))), events),
        "per_llm": _series(days, "llm_id", dict(access.filter_visible(LLM.objects.values_list("pk", "slug"))), events),
    }
    return TemplateResponse(request, "admin/fjordgate/dashboard.html", context)

"""The quota-leasing ledger: how much of a blocking budget each edge may spend, granted in slices.

An edge spends locally from what it was granted and asks for more before it runs out (`fj.up.<ns>.<edge>.lease`,
answered by the bridge through `budget_lease_grant`). Every grant runs under `SELECT ... FOR UPDATE` of the
budget row, so two bridges never hand out the same money:

    outstanding = sum over live leases of max(granted_e, used_e, spend_e)
                + sum over expired leases of max(used_e, spend_e) + spend of sources without a lease
    available   = limit - outstanding          (a grant never exceeds it, so outstanding <= limit always)

`spend_e` is the edge's ingested telemetry spend in the period. Slices are a share of `available` among the
edges holding live leases (available / (2 * live edges), at most a quarter of the limit); once `available` is
below `FLOOR_UNITS` request costs, only what waiting requests need is granted (per-request reservation). Since an
edge reserves a strict upper bound of each request's cost before serving it, answered spend <= limit
(docs/governance.md).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection, models, transaction
from django.utils import timezone

from control_plane.analytics.selectors import budget_spend_by_edge
from control_plane.sync.services import config_change_record
from shared_sdk.snapshot import BudgetConfig
from shared_sdk.sync_protocol import LeaseAsk, LeaseGrant, RateAsk, RateGrant

from .models import Budget, BudgetLease, RateLease
from .periods import period_bounds
from .reserved import LEASE_GRACE_S, budget_reserved_store, held_per_edge

__all__ = [
    "FLOOR_UNITS",
    "LEASE_GRACE_S",
    "LEASE_TTL_S",
    "budget_lease_grant",
    "budget_lease_outstanding",
    "budget_lease_reserve_exact",
    "budget_lease_settle_exact",
    "rate_lease_grant",
]

LEASE_TTL_S = 30.0
"""A lease is live this long after its last grant or renewal (edges renew every third of it)."""
SLICE_SHARE = 2
SLICE_MAX_FRACTION = Decimal("0.25")
FLOOR_UNITS = 4
_ZERO = Decimal("0")
_CENT_FRACTION = Decimal("0.000001")
"""The ledger's precision (the columns' six decimal places): grants round down to it, never up past the limit."""


def _config(budget: Budget) -> BudgetConfig:
    return BudgetConfig(
        id=budget.pk,
        scope=budget.scope,  # type: ignore[arg-type]
        target_id=budget.target_id or 0,
        limit=budget.limit,
        currency=budget.currency,
        period_start=budget.period_start.timestamp(),
        period_end=budget.period_end.timestamp(),
    )


def _spend_by_edge(budget: Budget) -> dict[str, Decimal]:
    members = None
    if budget.scope == Budget.Scope.GROUP and budget.group_id is not None:
        members = list(get_user_model().objects.filter(groups__id=budget.group_id).values_list("pk", flat=True))
    return budget_spend_by_edge(budget=_config(budget), group_members=members)


def _roll_if_due(budget: Budget, now: dt.datetime) -> None:
    if budget.period_end <= now:
        budget.period_start, budget.period_end = period_bounds(budget.period, now, budget.anchor)
        budget.spent = _ZERO
        budget.save(update_fields=["period_start", "period_end", "spent", "updated_at"])
        config_change_record(namespace=budget.namespace, reason="budget period rolled over")


def _outstanding(leases: list[BudgetLease], spend: dict[str, Decimal], now: dt.datetime) -> tuple[Decimal, int]:
    """(outstanding, live leases) of one budget and period; see the module docstring.

    The workers of one edge hold leases as `<edge>/<worker>` while the telemetry spend is the edge's, so leases
    are summed per edge before the max with its spend (one lease per edge: exactly `max(granted, used, spend)`).
    """
    live = sum(1 for lease in leases if lease.expires_at > now)
    held = held_per_edge(leases, spend, now)
    total = sum(held.values(), _ZERO)
    total += sum((value for edge, value in spend.items() if edge not in held), _ZERO)
    return total, live


def budget_lease_outstanding(*, budget: Budget, now: dt.datetime | None = None) -> Decimal:
    """What the ledger counts as spent or held in the budget's current period (for reports and tests)."""
    now = now or timezone.now()
    leases = list(BudgetLease.objects.filter(budget=budget, period_start=budget.period_start))
    return _outstanding(leases, _spend_by_edge(budget), now)[0]


def _slice(ask: LeaseAsk, limit: Decimal, available: Decimal, live: int) -> Decimal:
    if available <= 0:
        return _ZERO
    if available < FLOOR_UNITS * ask.unit:
        # The end of the budget: whole requests only, and only for requests that wait.
        if ask.need <= 0 or ask.unit > available:
            return _ZERO
        return min(ask.need, available).quantize(_CENT_FRACTION, rounding=ROUND_DOWN)
    if ask.need <= 0 and ask.unit <= 0:
        return _ZERO  # a pure renewal
    share = min(available / (SLICE_SHARE * max(live, 1)), limit * SLICE_MAX_FRACTION)
    return min(available, max(ask.need, share)).quantize(_CENT_FRACTION, rounding=ROUND_DOWN)


def _grant_one(ask: LeaseAsk, edge_id: str, namespace: str, now: dt.datetime) -> LeaseGrant:
    budget = Budget.objects.select_for_update().filter(pk=ask.budget_id).first()
    if (
        budget is None
        or not budget.is_active
        or budget.action != Budget.Action.BLOCK
        or budget.namespace not in (namespace, "")
    ):
        return LeaseGrant(budget_id=ask.budget_id, period_start=ask.period_start, leased=False)
    _roll_if_due(budget, now)
    period_start = budget.period_start.timestamp()
    leases = list(BudgetLease.objects.filter(budget=budget, period_start=budget.period_start))
    mine = next((lease for lease in leases if lease.edge_id == edge_id), None)
    if mine is None:
        mine = BudgetLease(budget=budget, period_start=budget.period_start, edge_id=edge_id, expires_at=now)
        leases.append(mine)
    spend = _spend_by_edge(budget)
    if ask.period_start == period_start:
        # The edge's figure is current; a fresh edge (restarted) adopts what the ledger knows instead.
        mine.used = max(mine.used, ask.used, spend.get(edge_id, _ZERO)) if ask.fresh else ask.used
    mine.expires_at = now + dt.timedelta(seconds=LEASE_TTL_S)
    outstanding, live = _outstanding(leases, spend, now)
    extra = _slice(ask, budget.limit, budget.limit - outstanding, live)
    mine.granted = max(mine.granted, mine.used, spend.get(edge_id, _ZERO)) + extra
    mine.save()
    budget_reserved_store(budget=budget, leases=leases, spend=spend, now=now)
    return LeaseGrant(
        budget_id=budget.pk, period_start=period_start, granted=mine.granted, used=mine.used, ttl_s=LEASE_TTL_S
    )


@transaction.atomic
def budget_lease_grant(*, edge_id: str, namespace: str, asks: list[LeaseAsk]) -> list[LeaseGrant]:
    """Renew `edge_id`'s leases and grant what the ledger can spare, one budget row lock at a time (in id order,
    so two bridges answering two edges never deadlock)."""
    now = timezone.now()
    return [_grant_one(ask, edge_id, namespace, now) for ask in sorted(asks, key=lambda ask: ask.budget_id)]


# -- rate limits: the same shape per (limit key, fixed minute) ------------------------------------------------

RATE_FLOOR = 4
"""Below this many requests (x live edges) left in a minute, only what waiting requests need is granted."""


_WINDOW_SLACK_S = 120
"""A rate ask may name the current minute give or take this (clock skew); others are answered with nothing."""


_RATE_FIELDS = {
    ("app", 3, "rpm"): "rate_limit_rpm",
    ("user", 4, "rpm"): "user_rate_limit_rpm",
    ("app", 3, "tpm"): "rate_limit_tpm",
    ("user", 4, "tpm"): "user_rate_limit_tpm",
}


def _configured_limit(namespace: str, key: str) -> int | None:
    """The limit a rate key stands for, from the control plane's own config: `app:<id>:rpm|tpm` (the app's
    `rate_limit_rpm` / `rate_limit_tpm`) or `user:<app>:<user>:rpm|tpm` (its `user_rate_limit_*`), for an app of
    the asking edge's namespace or a global one. The limit an ask carries is the edge's view only: an edge cannot
    raise it."""
    parts = key.split(":")
    if len(key) > 200 or len(parts) not in (3, 4) or not all(p.isdigit() for p in parts[1:-1]):
        return None
    field = _RATE_FIELDS.get((parts[0], len(parts), parts[-1]))
    if field is None:
        return None
    app_model = apps.get_model("applications", "App")
    app = app_model.objects.filter(pk=int(parts[1]), namespace__in=(namespace, "")).values(field).first()
    return app[field] if app is not None else None


def _rate_slice(ask: RateAsk, limit: int, available: int, live: int, held: int) -> int:
    """Requests (rpm) or tokens (tpm) to add to an edge's grant of one minute: what waiting requests lack, and
    while much is left, enough that the edge holds a share of it unused (`held`: granted and not used yet, as the
    edge says); near the end only whole requests (`unit`).

    Why top up to a share rather than add one per ask: an edge asks again whenever a burst finds its part empty
    or runs low, and adding a share each time let edges that used little pile up the minute between them, until
    an edge with a small part was refused (429) far below the limit."""
    if available <= 0 or ask.need <= 0:
        return 0
    unit = min(max(1, ask.unit), limit)
    if available < RATE_FLOOR * unit * max(live, 1):
        return min(ask.need, available) if min(ask.need, unit) <= available else 0
    share = min(available // (SLICE_SHARE * max(live, 1)), max(1, limit // 4))
    return min(available, max(ask.need, share - held))


def _rate_grant_one(ask: RateAsk, edge_id: str, namespace: str, now: dt.datetime) -> RateGrant:
    limit = _configured_limit(namespace, ask.key)
    minute = int(now.timestamp())
    if limit is None or ask.window_start % 60 or abs(ask.window_start - minute) > _WINDOW_SLACK_S:
        return RateGrant(key=ask.key[:200], window_start=ask.window_start, granted=0)
    with connection.cursor() as cursor:  # one lock per (namespace, key, minute), held to the commit
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"{namespace}|{ask.key}|{ask.window_start}"]
        )
    rows = list(RateLease.objects.filter(namespace=namespace, key=ask.key, window_start=ask.window_start))
    mine = next((row for row in rows if row.edge_id == edge_id), None)
    if mine is None:
        mine = RateLease(namespace=namespace, key=ask.key, window_start=ask.window_start, edge_id=edge_id)
        rows.append(mine)
    mine.expires_at = now + dt.timedelta(seconds=LEASE_TTL_S)
    available = limit - sum(row.granted for row in rows)
    live = sum(1 for row in rows if row.expires_at > now)
    held = mine.granted - min(max(ask.used, 0), mine.granted)
    mine.granted += _rate_slice(ask, limit, available, live, held)
    mine.save()
    return RateGrant(key=ask.key, window_start=ask.window_start, granted=mine.granted)


@transaction.atomic
def rate_lease_grant(*, edge_id: str, namespace: str, asks: list[RateAsk]) -> list[RateGrant]:
    """Grant requests (rpm) or tokens (tpm) of rate-limit minutes: the sum granted over edges never exceeds the
    limit of a minute."""
    now = timezone.now()
    grants = [
        _rate_grant_one(ask, edge_id, namespace, now) for ask in sorted(asks, key=lambda a: (a.key, a.window_start))
    ]
    if asks:  # by the clock, not by what an ask names: no edge can purge its namespace's live minutes
        RateLease.objects.filter(namespace=namespace, window_start__lt=int(now.timestamp()) - 180).delete()
    return grants


# -- exact reservations: the control plane's own LLM calls (studio plugins), as edge `studio` ------------------


@transaction.atomic
def budget_lease_reserve_exact(*, edge_id: str, budget_ids: list[int], amount: Decimal) -> int | None:
    """Hold exactly `amount` on every budget for one call, or nothing: returns the id of the first budget whose
    ledger cannot spare it (None when all were reserved). Settle with `budget_lease_settle_exact`."""
    now = timezone.now()
    held: list[tuple[Budget, list[BudgetLease], dict[str, Decimal], BudgetLease]] = []
    for budget in Budget.objects.select_for_update().filter(pk__in=budget_ids).order_by("pk"):
        _roll_if_due(budget, now)
        rows = list(BudgetLease.objects.filter(budget=budget, period_start=budget.period_start))
        mine = next((row for row in rows if row.edge_id == edge_id), None)
        if mine is None:
            mine = BudgetLease(budget=budget, period_start=budget.period_start, edge_id=edge_id, expires_at=now)
            rows.append(mine)
        mine.expires_at = now + dt.timedelta(seconds=LEASE_TTL_S)
        spend = _spend_by_edge(budget)
        outstanding, _ = _outstanding(rows, spend, now)
        if budget.limit - outstanding < amount:
            return budget.pk
        mine.granted = max(mine.granted, mine.used, spend.get(edge_id, _ZERO)) + amount
        mine.used += amount
        held.append((budget, rows, spend, mine))
    for budget, rows, spend, mine in held:
        mine.save()
        budget_reserved_store(budget=budget, leases=rows, spend=spend, now=now)
    return None


@transaction.atomic
def budget_lease_settle_exact(*, edge_id: str, budget_ids: list[int], reserved: Decimal, cost: Decimal) -> None:
    """Swap a `budget_lease_reserve_exact` hold for the call's real cost (<= the hold: the rest is given back)."""
    for lease in BudgetLease.objects.select_for_update().filter(
        budget_id__in=budget_ids, edge_id=edge_id, budget__period_start=models.F("period_start")
    ):
        back = max(_ZERO, reserved - cost)
        lease.used = max(_ZERO, lease.used - back)
        lease.granted = max(lease.used, lease.granted - back)
        lease.save(update_fields=["used", "granted", "expires_at", "updated_at"])
    now = timezone.now()
    for budget in Budget.objects.filter(pk__in=budget_ids):
        leases = BudgetLease.objects.filter(budget=budget, period_start=budget.period_start)
        budget_reserved_store(budget=budget, leases=leases, spend=_spend_by_edge(budget), now=now)

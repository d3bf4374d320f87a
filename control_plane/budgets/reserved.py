"""A budget's `reserved`, fed from the quota ledger: what the edges hold in leases beyond what they spent.

Whatever an edge was granted (or reported in flight) and has not spent yet is money the ledger cannot hand to
anyone else: requests in flight, the unspent part of a slice, a studio call's exact hold (edge `studio`). So per
edge and period

    held_e     = max(granted_e, used_e)  while the lease is live or in its grace
               = used_e                  once past its grace (the rest went back to the others)
    reserved_e = max(0, held_e - spend_e)          (spend_e: the edge's ingested spend in the period)
    reserved   = sum of reserved_e,   so  spent + reserved = the ledger's outstanding,  remaining = what it can grant

An edge run as several workers (`fjordgate edge --workers N`) leases as `<edge>/<worker>` while its telemetry
spend is the edge's: granted_e and used_e are then the sums over its workers' leases.

The figures are stored on the budget and its per-edge rows whenever the ledger or the spend changes (a grant, a
renewal every `EDGE_LEASE_RENEW_S`, a studio hold or settlement, an ingested telemetry batch), so the API and the
admin read them without touching the ledger.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from decimal import Decimal

from .models import Budget, BudgetEdgeSpend, BudgetLease

__all__ = ["LEASE_GRACE_S", "budget_reserved_store", "held_per_edge"]

LEASE_GRACE_S = 120.0
"""After expiry, an unrenewed lease still counts in full this long: requests a partitioned edge admitted before
its lease ran out may still be running and are not in its last report."""
_ZERO = Decimal("0")


def _lease_amount(lease: BudgetLease, now: dt.datetime) -> Decimal:
    if lease.expires_at + dt.timedelta(seconds=LEASE_GRACE_S) > now:
        return max(lease.granted, lease.used)
    return lease.used


def held_per_edge(leases: Iterable[BudgetLease], spend: Mapping[str, Decimal], now: dt.datetime) -> dict[str, Decimal]:
    """held_e of every edge holding a lease: its workers' leases summed, or its spend when that is more."""
    amounts: dict[str, Decimal] = {}
    for lease in leases:
        edge = lease.edge_id.partition("/")[0]
        amounts[edge] = amounts.get(edge, _ZERO) + _lease_amount(lease, now)
    return {edge: max(amount, spend.get(edge, _ZERO)) for edge, amount in amounts.items()}


def budget_reserved_store(
    *, budget: Budget, leases: Iterable[BudgetLease], spend: Mapping[str, Decimal], now: dt.datetime
) -> Decimal:
    """Store `reserved` (total and per edge) for the budget's current period from its leases; returns the total.
    Call inside the transaction that changed the leases or the spend."""
    per_edge = {
        edge: max(_ZERO, held - spend.get(edge, _ZERO)) for edge, held in held_per_edge(leases, spend, now).items()
    }
    total = sum(per_edge.values(), _ZERO)
    if budget.reserved != total:
        budget.reserved = total
        budget.save(update_fields=["reserved", "updated_at"])
    rows = {row.edge_id: row for row in BudgetEdgeSpend.objects.filter(budget=budget)}
    for edge_id, value in per_edge.items():
        row = rows.pop(edge_id, None)
        if row is None:
            if value > 0:
                BudgetEdgeSpend.objects.create(
                    budget=budget, edge_id=edge_id, spent=spend.get(edge_id, _ZERO), reserved=value
                )
        elif row.reserved != value:
            row.reserved = value
            row.save(update_fields=["reserved", "updated_at"])
    for row in rows.values():  # an edge without a lease this period holds nothing
        if row.spent == 0:
            row.delete()
        elif row.reserved != 0:
            row.reserved = _ZERO
            row.save(update_fields=["reserved", "updated_at"])
    return total

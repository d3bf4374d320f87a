"""The currency rule: a budget is held only against prices in its own currency.

The control plane counts a budget's spend from the usage records in its currency only, and amounts in different
currencies cannot be added without an exchange rate nobody here owns (LiteLLM keeps every budget and price in
USD for the same reason). So a EUR budget over an LLM priced in USD would count nothing and never block. Every
write that could create such a pair is refused where it is made, naming both currencies:

- an `llm` budget whose currency differs from a price that bills that LLM's requests;
- an `app` budget whose currency differs from a price that bills one of the app's LLMs;
- a price (new or changed) that would bill, in another currency, an LLM an active `llm` or `app` budget covers,
  or a price deleted so that another vendor's price of the model, in another currency, would bill it instead;
- an LLM given to an app (or an LLM's models, vendor or default model changed) so that an active budget of the
  app or LLM would be billed in another currency.

Only active budgets are checked (a budget is checked again when it is switched on). User and group budgets
follow the user to whatever app and LLM the request reaches, which keys, group memberships and catalogues decide
at request time: they are left to the edge, which refuses a request whose price is in another currency than a
blocking budget in force for it (`edge_gateway/policy.py`) and does not count it on a `notify` one.

Which prices bill an LLM is the edge's rule (`CompiledConfig.price`, `CompiledLLM.allows`): the price of
(the LLM's vendor, the model) for each model the LLM serves, else the first price of that model name in (vendor,
model) order. The functions return messages (the admin forms show them as form errors); the services raise them
as field errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from django.db.models import Q

from control_plane.applications.models import App
from control_plane.catalog.models import ModelPrice
from control_plane.llms.models import LLM

from .models import Budget

__all__ = [
    "app_llm_currency_errors",
    "budget_currency_errors",
    "llm_billing_currencies",
    "llm_currency_errors",
    "price_currency_errors",
    "price_delete_currency_errors",
]

MAX_ERRORS = 5
"""Mismatches named per refusal: enough to see the pattern, bounded whatever the configuration's size."""

RULE = "A budget counts only prices in its own currency."


class _Price(NamedTuple):
    vendor: str
    model: str
    currency: str

    @property
    def label(self) -> str:
        return f"{self.vendor}/{self.model}"


class _PriceBook:
    """Every price, as the edge looks them up: by (vendor, model), else by model name alone (the first one)."""

    def __init__(self, prices: Iterable[_Price]) -> None:
        self.prices = sorted(prices)
        self.own: dict[str, set[str]] = {}
        self.first_by_model: dict[str, _Price] = {}
        for p in self.prices:
            self.own.setdefault(p.vendor, set()).add(p.model)
            self.first_by_model.setdefault(p.model, p)

    @classmethod
    def load(cls, replacing: int | None = None, candidate: _Price | None = None) -> _PriceBook:
        """The stored prices, with `candidate` in place of price `replacing` (a write not saved yet)."""
        rows = ModelPrice.objects.exclude(pk=replacing) if replacing is not None else ModelPrice.objects.all()
        prices = [_Price(*row) for row in rows.values_list("vendor", "model", "currency")]
        if candidate is not None:
            prices = [p for p in prices if (p.vendor, p.model) != (candidate.vendor, candidate.model)]
            prices.append(candidate)
        return cls(prices)

    def bills(self, llm: LLM, price: _Price, patterns: Sequence[re.Pattern[str]]) -> bool:
        """Whether the edge would bill a request `llm` answers at `price`."""
        own = self.own.get(llm.vendor, set())
        if price.vendor != llm.vendor and (price.model in own or self.first_by_model.get(price.model) != price):
            return False
        if patterns:
            return any(p.fullmatch(price.model) for p in patterns)
        return price.model in own or price.model == llm.default_model  # an empty allow-list serves only these

    def billing(self, llm: LLM, currency: str) -> list[_Price]:
        """The prices that bill `llm`'s requests in another currency than `currency`."""
        patterns = _patterns(llm)
        return [p for p in self.prices if p.currency != currency and self.bills(llm, p, patterns)]


def _patterns(llm: LLM) -> list[re.Pattern[str]]:
    found = []
    for pattern in llm.allowed_models or []:
        try:
            found.append(re.compile(pattern))
        except (re.error, TypeError):
            continue  # the LLM's own validation reports it
    return found


def llm_billing_currencies(*, llm: LLM) -> set[str]:
    """The currencies in which `llm`'s requests may be billed."""
    book = _PriceBook.load()
    patterns = _patterns(llm)
    return {p.currency for p in book.prices if book.bills(llm, p, patterns)}


def _budget_label(budget: Budget) -> str:
    return f"the {budget.scope} budget {budget.name or '#' + str(budget.pk)!r}"


def budget_currency_errors(*, scope: str, app: App | None, llm: LLM | None, currency: str) -> list[str]:
    """Why a budget of `scope` on `app` / `llm` in `currency` would be held against prices in another currency."""
    if scope == Budget.Scope.LLM and llm is not None:
        llms, target = [llm], f"LLM {llm.slug}"
    elif scope == Budget.Scope.APP and app is not None and app.pk is not None:
        llms, target = list(app.llms.order_by("slug")), f"app {app.name!r}"
    else:
        return []
    book = _PriceBook.load()
    errors = []
    for each in llms:
        for price in book.billing(each, currency):
            via = "its requests are" if scope == Budget.Scope.LLM else f"its LLM {each.slug} is"
            errors.append(
                f"A budget in {currency} cannot cover {target}: {via} billed in {price.currency} (price "
                f"{price.label}). {RULE} Set the budget in {price.currency}, or price the model in {currency}."
            )
            if len(errors) >= MAX_ERRORS:
                return errors
    return errors


def _active_budgets(llms: Iterable[LLM], currency: str) -> Iterable[Budget]:
    """Active `llm` budgets on `llms` and `app` budgets of apps holding one of them, in another currency."""
    ids = [x.pk for x in llms]
    return (
        Budget.objects.filter(is_active=True)
        .filter(Q(scope=Budget.Scope.LLM, llm_id__in=ids) | Q(scope=Budget.Scope.APP, app__llms__in=ids))
        .exclude(currency=currency)
        .select_related("app", "llm")
        .distinct()
        .order_by("id")[:MAX_ERRORS]
    )


def price_currency_errors(*, vendor: str, model: str, currency: str, price_id: int | None = None) -> list[str]:
    """Why a price of `vendor`/`model` in `currency` (replacing price `price_id`) would bill an active budget's
    LLM in another currency than the budget's."""
    candidate = _Price(vendor, model, currency)
    book = _PriceBook.load(replacing=price_id, candidate=candidate)
    billed = [llm for llm in LLM.objects.order_by("slug") if book.bills(llm, candidate, _patterns(llm))]
    errors = []
    for budget in _active_budgets(billed, currency):
        if budget.llm is not None:
            held = budget.llm.slug
        else:
            holds = set(budget.app.llms.values_list("pk", flat=True)) if budget.app is not None else set()
            held = next(x.slug for x in billed if x.pk in holds)
        errors.append(
            f"Price {candidate.label} in {currency} would bill LLM {held}, which {_budget_label(budget)} holds in "
            f"{budget.currency}. {RULE} Give the price in {budget.currency}, or change the budget's currency first."
        )
    return errors


def price_delete_currency_errors(*, price: ModelPrice) -> list[str]:
    """Why deleting `price` would bill an active budget's LLM in another currency: its model's requests on its
    vendor's LLMs fall back to another vendor's price of the same model name (the edge's lookup)."""
    book = _PriceBook.load(replacing=price.pk)
    fallback = book.first_by_model.get(price.model)
    if fallback is None:
        return []
    billed = [llm for llm in LLM.objects.filter(vendor=price.vendor) if book.bills(llm, fallback, _patterns(llm))]
    return [
        f"Without price {price.vendor}/{price.model}, LLM(s) {', '.join(x.slug for x in billed)} would be billed "
        f"at {fallback.label} in {fallback.currency}, but {_budget_label(budget)} is in {budget.currency}. {RULE}"
        for budget in _active_budgets(billed, fallback.currency)
    ]


def app_llm_currency_errors(*, app: App | None, llm_ids: Iterable[int]) -> list[str]:
    """Why giving `app` the LLMs `llm_ids` would bill one of its active budgets in another currency."""
    if app is None or app.pk is None:
        return []
    budgets = list(app.budgets.filter(is_active=True).order_by("id"))
    if not budgets:
        return []
    book = _PriceBook.load()
    errors = []
    for llm in LLM.objects.filter(pk__in=list(llm_ids)).order_by("slug"):
        for budget in budgets:
            for price in book.billing(llm, budget.currency)[:1]:
                errors.append(
                    f"LLM {llm.slug} is billed in {price.currency} (price {price.label}), but app {app.name!r} has "
                    f"{_budget_label(budget)} in {budget.currency}. {RULE}"
                )
                if len(errors) >= MAX_ERRORS:
                    return errors
    return errors


def llm_currency_errors(*, llm: LLM, before: set[str]) -> list[str]:
    """Why `llm`, changed (its models, vendor or default model), would bill an active budget of it or of an app
    holding it in a currency other than the budget's. Only currencies the change adds (not in `before`) count:
    a mismatch written before this rule does not block unrelated edits."""
    added = llm_billing_currencies(llm=llm) - before
    errors = []
    for currency in sorted(added):
        for budget in _active_budgets([llm], currency):
            errors.append(
                f"LLM {llm.slug} would be billed in {currency}, but {_budget_label(budget)} covering it is in "
                f"{budget.currency}. {RULE}"
            )
    return errors[:MAX_ERRORS]

"""A budget is held only against prices in its own currency: every write that would pair a budget with a price in
another currency is refused where it is made (API field errors, admin form errors), naming both currencies.
Before, a EUR budget over USD prices was accepted, counted nothing in the control plane and was charged USD
amounts as euros at the edge."""

from __future__ import annotations

from decimal import Decimal

import pytest

from control_plane.applications.models import App
from control_plane.budgets.models import Budget
from control_plane.budgets.services import budget_create
from control_plane.catalog.models import ModelPrice
from control_plane.llms.models import LLM

pytestmark = pytest.mark.django_db


@pytest.fixture
def gpt():
    """An OpenAI LLM with an empty allow-list (it serves its default model and its vendor's priced models), its
    models priced in USD, and an app that uses it."""
    llm = LLM.objects.create(name="GPT", slug="gpt", vendor="openai", default_model="gpt-4o")
    ModelPrice.objects.create(vendor="openai", model="gpt-4o", currency="USD")
    ModelPrice.objects.create(vendor="anthropic", model="claude", currency="EUR")  # bills no OpenAI request
    return llm


@pytest.fixture
def bot(gpt):
    app = App.objects.create(name="bot")
    app.llms.add(gpt)
    return app


def _fields(response) -> dict:
    assert response.status_code == 400, response.content
    return response.json()["extra"]["fields"]


def test_a_budget_in_another_currency_than_its_llms_prices_is_refused(admin_api, gpt, bot):
    for scope, target in (("llm", gpt.pk), ("app", bot.pk)):
        refused = admin_api.post(
            "/api/v1/budgets/", {"scope": scope, scope: target, "limit": "10", "currency": "EUR"}, format="json"
        )
        (message,) = _fields(refused)["currency"]
        assert "A budget in EUR" in message and "billed in USD" in message and "openai/gpt-4o" in message
        made = admin_api.post(
            "/api/v1/budgets/", {"scope": scope, scope: target, "limit": "10", "currency": "USD"}, format="json"
        )
        assert made.status_code == 201, made.content
    assert sorted(Budget.objects.values_list("scope", "currency")) == [("app", "USD"), ("llm", "USD")]


def test_an_inactive_budget_may_differ_until_it_is_switched_on(admin_api, gpt):
    made = admin_api.post(
        "/api/v1/budgets/",
        {"scope": "llm", "llm": gpt.pk, "limit": "10", "currency": "EUR", "is_active": False},
        format="json",
    )
    assert made.status_code == 201, made.content
    refused = admin_api.patch(f"/api/v1/budgets/{made.json()['id']}/", {"is_active": True}, format="json")
    assert "billed in USD" in _fields(refused)["currency"][0]
    assert not Budget.objects.get().is_active


def test_a_price_that_would_bill_a_budget_in_another_currency_is_refused(admin_api, gpt, bot):
    budget_create(data={"scope": "app", "app": bot, "limit": Decimal("10"), "currency": "USD"})
    price = ModelPrice.objects.get(vendor="openai", model="gpt-4o")
    refused = admin_api.patch(f"/api/v1/model-prices/{price.pk}/", {"currency": "EUR"}, format="json")
    (message,) = _fields(refused)["currency"]
    assert "Price openai/gpt-4o in EUR would bill LLM gpt" in message and "in USD" in message
    # a new model of the LLM's vendor (served: the allow-list is empty) in EUR: the same
    new = {"vendor": "openai", "model": "gpt-4o-mini", "currency": "EUR"}
    assert "app budget" in _fields(admin_api.post("/api/v1/model-prices/", new, format="json"))["currency"][0]
    # another vendor's model bills no request of this LLM: any currency
    other = {"vendor": "mistral", "model": "large", "currency": "EUR"}
    assert admin_api.post("/api/v1/model-prices/", other, format="json").status_code == 201
    assert ModelPrice.objects.get(vendor="openai", model="gpt-4o").currency == "USD"


def test_giving_an_app_an_llm_billed_in_another_currency_than_its_budget_is_refused(admin_api, gpt):
    app = App.objects.create(name="eurobot")
    budget_create(data={"scope": "app", "app": app, "limit": Decimal("10"), "currency": "EUR"})
    refused = admin_api.patch(f"/api/v1/apps/{app.pk}/", {"llm_ids": [gpt.pk]}, format="json")
    (message,) = _fields(refused)["llm_ids"]
    assert "LLM gpt is billed in USD" in message and "in EUR" in message
    assert not app.llms.exists()


def test_an_llm_changed_to_serve_a_model_priced_in_another_currency_is_refused(admin_api, gpt):
    budget_create(data={"scope": "llm", "llm": gpt, "limit": Decimal("10"), "currency": "USD"})
    ModelPrice.objects.create(vendor="azure", model="gpt-4o-eu", currency="EUR")
    refused = admin_api.patch(f"/api/v1/llms/{gpt.pk}/", {"allowed_models": ["gpt-4o.*"]}, format="json")
    assert refused.status_code == 400, refused.content
    assert "LLM gpt would be billed in EUR" in refused.json()["message"] and "USD" in refused.json()["message"]
    assert LLM.objects.get(pk=gpt.pk).allowed_models == []


def test_the_admin_forms_show_the_mismatch_on_the_field(admin_client, gpt, bot):
    form = {
        "name": "euro",
        "scope": "llm",
        "llm": gpt.pk,
        "limit": "10",
        "currency": "EUR",
        "period": "monthly",
        "action": "block",
        "on_unreachable": "fail_closed",
        "alert_thresholds": "[50, 100]",
        "is_active": "on",
    }
    page = admin_client.post("/admin/budgets/budget/add/", form)
    assert page.status_code == 200  # the form again, not a redirect
    errors = page.context["adminform"].form.errors
    assert "A budget in EUR cannot cover LLM gpt" in errors["currency"][0] and "USD" in errors["currency"][0]
    assert not Budget.objects.exists()

    budget_create(data={"scope": "llm", "llm": gpt, "limit": Decimal("10"), "currency": "USD"})
    price = ModelPrice.objects.get(vendor="openai", model="gpt-4o")
    price_form = {
        "vendor": "openai",
        "model": "gpt-4o",
        "prompt_per_million": "1",
        "completion_per_million": "2",
        "cache_read_per_million": "0",
        "cache_write_per_million": "0",
        "currency": "EUR",
        "max_output_tokens": "4096",
    }
    page = admin_client.post(f"/admin/catalog/modelprice/{price.pk}/change/", price_form)
    assert page.status_code == 200
    assert "in EUR would bill LLM gpt" in page.context["adminform"].form.errors["currency"][0]
    assert ModelPrice.objects.get(pk=price.pk).currency == "USD"


def test_the_app_form_shows_an_llm_billed_in_another_currency_on_the_llm_field(admin_client, gpt):
    app = App.objects.create(name="eurobot")
    budget_create(data={"scope": "app", "app": app, "limit": Decimal("10"), "currency": "EUR"})
    form = {
        "name": "eurobot",
        "namespace": "",
        "metadata": "{}",
        "allowed_ips": "[]",
        "is_active": "on",
        "llms": [gpt.pk],
        "credentials-TOTAL_FORMS": 0,
        "credentials-INITIAL_FORMS": 0,
        "plugin_resources-TOTAL_FORMS": 0,
        "plugin_resources-INITIAL_FORMS": 0,
    }
    page = admin_client.post(f"/admin/applications/app/{app.pk}/change/", form)
    assert page.status_code == 200
    (error,) = page.context["adminform"].form.errors["llms"]
    assert "LLM gpt is billed in USD" in error and "in EUR" in error
    assert not app.llms.exists()


def test_deleting_a_price_that_leaves_the_model_billed_at_another_vendors_price_in_another_currency_is_refused(
    admin_api, gpt
):
    """Without its own vendor's price, a model is billed at the first other vendor's price of the same name."""
    ModelPrice.objects.create(vendor="azure", model="gpt-4o", currency="EUR")
    budget_create(data={"scope": "llm", "llm": gpt, "limit": Decimal("10"), "currency": "USD"})
    price = ModelPrice.objects.get(vendor="openai", model="gpt-4o")
    refused = admin_api.delete(f"/api/v1/model-prices/{price.pk}/")
    (message,) = _fields(refused)["currency"]
    assert "Without price openai/gpt-4o, LLM(s) gpt would be billed at azure/gpt-4o in EUR" in message
    assert "in USD" in message
    assert ModelPrice.objects.filter(pk=price.pk).exists()
    # a price no other vendor's stands in for goes as before
    mini = ModelPrice.objects.create(vendor="openai", model="gpt-4o-mini", currency="USD")
    assert admin_api.delete(f"/api/v1/model-prices/{mini.pk}/").status_code == 204

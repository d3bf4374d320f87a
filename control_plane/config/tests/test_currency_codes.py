"""A currency is a three-letter code in capitals on every write path: the control plane counts a budget's spend from
the usage records in the budget's currency only, so a price in `usd` (or `-1`, which the API took) was spend that
no budget ever counted."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from control_plane.applications.models import App
from control_plane.budgets.models import Budget
from control_plane.budgets.services import budget_create
from control_plane.catalog.models import ModelPrice
from control_plane.catalog.services import model_price_upsert

from .admin_form_data import form_data

pytestmark = pytest.mark.django_db
BAD_CODES = ["usd", "-1", "5", "US", "US$", "EU R", "ÜSD", ""]


@pytest.fixture
def price():
    return model_price_upsert(data={"vendor": "openai", "model": "gpt-x", "prompt_per_million": "1"})


@pytest.fixture
def app():
    return App.objects.create(name="bot", namespace="eu")


@pytest.mark.parametrize("code", BAD_CODES)
def test_api_refuses_a_price_or_budget_in_something_that_is_not_a_currency_code(admin_api, price, app, code):
    response = admin_api.patch(f"/api/v1/model-prices/{price.pk}/", {"currency": code}, format="json")
    assert response.status_code == 400, response.content
    assert "currency" in response.json()["extra"]["fields"]
    assert ModelPrice.objects.get(pk=price.pk).currency == "USD"

    response = admin_api.post(
        "/api/v1/budgets/", {"scope": "app", "app": app.pk, "limit": "5", "currency": code}, format="json"
    )
    assert response.status_code == 400 and "currency" in response.json()["extra"]["fields"], response.content
    assert not Budget.objects.exists()


def test_codes_in_capitals_are_taken_and_services_refuse_the_rest(admin_api, price, app):
    response = admin_api.patch(f"/api/v1/model-prices/{price.pk}/", {"currency": "EUR"}, format="json")
    assert response.status_code == 200 and response.json()["currency"] == "EUR"
    budget = budget_create(data={"scope": "app", "app": app, "limit": Decimal("5"), "currency": "EUR"})
    assert budget.currency == "EUR"
    with pytest.raises(ValidationError) as refused:
        budget_create(data={"scope": "app", "app": app, "limit": Decimal("5"), "currency": "eur"})
    assert "currency" in refused.value.message_dict


def test_admin_form_shows_the_rule(admin_client, price):
    url = f"/admin/catalog/modelprice/{price.pk}/change/"
    data = form_data(admin_client.get(url).content.decode())
    response = admin_client.post(url, {**data, "currency": ["usd"]})
    assert response.status_code == 200, "the form should be shown again with its error"
    assert "three-letter ISO 4217 currency code" in response.content.decode()
    assert ModelPrice.objects.get(pk=price.pk).currency == "USD"

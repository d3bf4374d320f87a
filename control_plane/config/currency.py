"""The one rule for a currency code on every write path (a model field's validator: API, admin and services).

Prices and budgets are compared by their currency: the control plane counts a budget's spend from the usage
records in its currency only, so a price in `usd` or `-1` is spend no budget ever sees. An ISO 4217 code is
three upper-case letters; the list of codes itself is not checked (it changes, and a deployment may bill in an
internal unit such as `CRD`).
"""

from __future__ import annotations

from django.core.validators import RegexValidator

__all__ = ["CURRENCY_CODE"]

CURRENCY_CODE = RegexValidator(
    r"^[A-Z]{3}\Z", "Use a three-letter ISO 4217 currency code in capitals, such as USD or EUR.", code="currency"
)

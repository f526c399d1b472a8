"""Parsing the checkout form into a payment request the payment service accepts."""

from __future__ import annotations

import re
from typing import Any

from web.formatting import DIGITS, METHOD_LABELS

AMOUNT = re.compile(r"^\d{1,9}([.,]\d+)?$")


class FormError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in sorted(errors.items())))
        self.errors = errors


def parse_amount(text: str, currency: str) -> int:
    """'12.34' or '12,34' -> 1234 minor units; more decimals than the currency has are an error."""
    text = text.strip()
    if not AMOUNT.match(text):
        raise ValueError(f"not an amount: {text!r}")
    major, _, minor = text.replace(",", ".").partition(".")
    digits = DIGITS.get(currency.upper(), 2)
    if len(minor) > digits:
        raise ValueError(f"{currency.upper()} has {digits} decimals")
    scale: int = 10**digits
    return int(major) * scale + int(minor.ljust(digits, "0") or 0)


def mask_card(number: str) -> str:
    digits = re.sub(r"\D", "", number)
    return "•••• " + digits[-4:] if len(digits) >= 4 else "••••"


def checkout_request(form: dict[str, str]) -> dict[str, Any]:
    """Validate all fields at once, so the customer sees every problem in one go."""
    errors: dict[str, str] = {}
    currency = form.get("currency", "").strip().upper()
    if currency not in DIGITS:
        errors["currency"] = "choose a currency"
    method = form.get("method", "")
    if method not in METHOD_LABELS:
        errors["method"] = "choose a payment method"
    amount = 0
    try:
        amount = parse_amount(form.get("amount", ""), currency or "EUR")
        if amount <= 0:
            errors["amount"] = "must be more than zero"
    except ValueError as exc:
        errors["amount"] = str(exc)
    card = re.sub(r"[\s-]", "", form.get("card_number", ""))
    if method == "credit_card" and not card.isdigit():
        errors["card_number"] = "enter the card number"
    if errors:
        raise FormError(errors)
    request: dict[str, Any] = {"amount": amount, "currency": currency, "method": method}
    if method == "credit_card":
        request["card_number"] = card
    return request

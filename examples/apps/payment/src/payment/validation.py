"""Checks on incoming payment requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from payment.currency import MINOR_UNITS
from payment.fees import FEE_SCHEDULE

MIN_AMOUNT = 50
MAX_AMOUNT = 10_000_000


class ValidationError(ValueError):
    pass


def luhn_valid(number: str) -> bool:
    if not number.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def validate_card_number(number: str) -> str:
    """Strip spaces and dashes; return the digits if they form a plausible card number."""
    digits = number.replace(" ", "").replace("-", "")
    if not digits.isdigit() or not 12 <= len(digits) <= 19:
        raise ValidationError("card number must have 12 to 19 digits")
    if not luhn_valid(digits):
        raise ValidationError("card number fails the Luhn check")
    return digits


def validate_currency(code: Any) -> str:
    if not isinstance(code, str) or code.upper() not in MINOR_UNITS:
        raise ValidationError(f"unsupported currency {code!r}")
    return code.upper()


def validate_amount(amount: Any) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationError("amount must be an integer number of minor units")
    if not MIN_AMOUNT <= amount <= MAX_AMOUNT:
        raise ValidationError(f"amount must be between {MIN_AMOUNT} and {MAX_AMOUNT}")
    return amount


def validate_expiry(month: int, year: int, today: dt.date) -> None:
    if not 1 <= month <= 12:
        raise ValidationError("expiry month must be 1-12")
    if (year, month) < (today.year, today.month):
        raise ValidationError("card has expired")


def validate_payment_request(data: Any) -> dict[str, Any]:
    """Validate a POST /payments body; returns the cleaned fields."""
    if not isinstance(data, dict):
        raise ValidationError("body must be a JSON object")
    method = data.get("method")
    if method not in FEE_SCHEDULE:
        raise ValidationError(f"unsupported method {method!r}")
    cleaned = {
        "amount": validate_amount(data.get("amount")),
        "currency": validate_currency(data.get("currency")),
        "method": method,
    }
    if method == "credit_card":
        card = data.get("card_number")
        if not isinstance(card, str):
            raise ValidationError("credit_card payments need card_number")
        cleaned["card_last4"] = validate_card_number(card)[-4:]
    return cleaned

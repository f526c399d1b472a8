"""How amounts and statuses are shown to customers."""

from __future__ import annotations

DIGITS = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "JPY": 0, "KWD": 3}
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥"}
STATUS_LABELS = {"pending": "Awaiting confirmation", "confirmed": "Confirmed", "cancelled": "Cancelled",
                 "refunded": "Refunded", "partially_refunded": "Partially refunded"}
METHOD_LABELS = {"credit_card": "Credit card", "paypal": "PayPal", "bank_transfer": "Bank transfer"}


def format_money(units: int, currency: str) -> str:
    """2500 EUR -> '€25.00'; 123456 USD -> '$1,234.56'; unknown symbols use the code: 'CHF 5.00'."""
    currency = currency.upper()
    digits = DIGITS.get(currency, 2)
    sign = "-" if units < 0 else ""
    major, minor = divmod(abs(units), 10**digits)
    text = f"{major:,}" + (f".{minor:0{digits}d}" if digits else "")
    symbol = SYMBOLS.get(currency)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{currency} {text}"


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())


def method_label(method: str, card_last4: str | None = None) -> str:
    label = METHOD_LABELS.get(method, method)
    return f"{label} ending in {card_last4}" if card_last4 else label

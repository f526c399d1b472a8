"""Amounts are integers in a currency's minor unit (cents); this module converts and formats them."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MINOR_UNITS = {"EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "JPY": 0, "KWD": 3}


class UnknownCurrency(ValueError):
    pass


def minor_units(currency: str) -> int:
    try:
        return MINOR_UNITS[currency.upper()]
    except KeyError:
        raise UnknownCurrency(f"unknown currency {currency!r}") from None


def to_minor(amount: str | Decimal, currency: str) -> int:
    """'12.345' EUR -> 1235 (half up), as a bank would round."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise ValueError(f"not a number: {amount!r}") from None
    scaled = value.scaleb(minor_units(currency)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(scaled)


def from_minor(units: int, currency: str) -> Decimal:
    digits = minor_units(currency)
    return Decimal(units).scaleb(-digits).quantize(Decimal(1).scaleb(-digits))


def convert(units: int, source: str, target: str, rates: dict[str, Decimal]) -> int:
    """Convert minor units between currencies; ``rates`` are units of each currency per 1 base unit."""
    source, target = source.upper(), target.upper()
    if source == target:
        return units
    for code in (source, target):
        if code not in rates:
            raise UnknownCurrency(f"no exchange rate for {code}")
    major = from_minor(units, source) / rates[source] * rates[target]
    return to_minor(major, target)


def format_amount(units: int, currency: str) -> str:
    """1234 EUR -> '12.34 EUR'; negative amounts keep their sign."""
    return f"{from_minor(units, currency)} {currency.upper()}"

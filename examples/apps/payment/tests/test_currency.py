from decimal import Decimal

import pytest

from payment.currency import UnknownCurrency, convert, format_amount, from_minor, minor_units, to_minor


@pytest.mark.parametrize(("currency", "digits"), [("EUR", 2), ("jpy", 0), ("KWD", 3)])
def test_minor_units_per_currency(currency, digits):
    assert minor_units(currency) == digits


def test_unknown_currency_is_rejected():
    with pytest.raises(UnknownCurrency, match="XXX"):
        minor_units("XXX")


def test_to_minor_rounds_half_up():
    assert to_minor("12.345", "EUR") == 1235
    assert to_minor("12.344", "EUR") == 1234
    assert to_minor(Decimal("1500"), "JPY") == 1500


def test_to_minor_rejects_garbage():
    with pytest.raises(ValueError, match="not a number"):
        to_minor("twelve", "EUR")


def test_from_minor_keeps_the_currency_precision():
    assert from_minor(1234, "EUR") == Decimal("12.34")
    assert str(from_minor(5, "KWD")) == "0.005"
    assert str(from_minor(1500, "JPY")) == "1500"


def test_convert_between_currencies_via_base_rates():
    rates = {"EUR": Decimal("1"), "USD": Decimal("1.10"), "JPY": Decimal("160")}
    assert convert(1000, "EUR", "USD", rates) == 1100
    assert convert(1100, "USD", "EUR", rates) == 1000
    assert convert(1000, "EUR", "JPY", rates) == 1600


def test_convert_same_currency_needs_no_rate():
    assert convert(777, "GBP", "gbp", {}) == 777


def test_convert_without_rate_fails():
    with pytest.raises(UnknownCurrency, match="CHF"):
        convert(100, "EUR", "CHF", {"EUR": Decimal(1)})


def test_format_amount():
    assert format_amount(1234, "eur") == "12.34 EUR"
    assert format_amount(-50, "USD") == "-0.50 USD"

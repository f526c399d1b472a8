import pytest

from web.formatting import format_money, method_label, status_label


@pytest.mark.parametrize(("units", "currency", "text"), [
    (2500, "EUR", "€25.00"),
    (123456, "usd", "$1,234.56"),
    (1500, "JPY", "¥1,500"),
    (5, "KWD", "KWD 0.005"),
    (-1999, "GBP", "-£19.99"),
])
def test_format_money(units, currency, text):
    assert format_money(units, currency) == text


def test_status_labels():
    assert status_label("pending") == "Awaiting confirmation"
    assert status_label("confirmed") == "Confirmed"
    assert status_label("on_hold") == "On hold"


def test_method_label_with_and_without_card():
    assert method_label("credit_card", "4242") == "Credit card ending in 4242"
    assert method_label("paypal") == "PayPal"

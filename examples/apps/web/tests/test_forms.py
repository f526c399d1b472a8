import pytest

from web.forms import FormError, checkout_request, mask_card, parse_amount


@pytest.mark.parametrize(("text", "currency", "units"), [
    ("12.34", "EUR", 1234), ("12,5", "EUR", 1250), ("7", "USD", 700), ("1500", "JPY", 1500)])
def test_parse_amount(text, currency, units):
    assert parse_amount(text, currency) == units


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "-5", "12.345"])
def test_parse_amount_rejects(text):
    with pytest.raises(ValueError):
        parse_amount(text, "EUR")


def test_mask_card_shows_only_the_last_four_digits():
    assert mask_card("4242 4242 4242 4242") == "•••• 4242"
    assert mask_card("12") == "••••"


def test_checkout_request_for_a_card_payment():
    form = {"amount": "49.99", "currency": "eur", "method": "credit_card", "card_number": "4242-4242 4242 4242"}
    assert checkout_request(form) == {"amount": 4999, "currency": "EUR", "method": "credit_card",
                                      "card_number": "4242424242424242"}


def test_checkout_request_reports_every_error_at_once():
    with pytest.raises(FormError) as info:
        checkout_request({"amount": "0", "currency": "XXX", "method": "credit_card"})
    assert set(info.value.errors) == {"amount", "currency", "card_number"}


def test_paypal_needs_no_card_number():
    assert "card_number" not in checkout_request({"amount": "10", "currency": "USD", "method": "paypal"})

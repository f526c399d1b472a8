import datetime as dt

import pytest

from payment.validation import (
    ValidationError,
    luhn_valid,
    validate_amount,
    validate_card_number,
    validate_currency,
    validate_expiry,
    validate_payment_request,
)

VISA_TEST = "4242 4242 4242 4242"


@pytest.mark.parametrize("number", ["4242424242424242", "5555555555554444", "79927398713"])
def test_luhn_accepts_valid_numbers(number):
    assert luhn_valid(number)


@pytest.mark.parametrize("number", ["4242424242424241", "12ab", ""])
def test_luhn_rejects_invalid_numbers(number):
    assert not luhn_valid(number)


def test_card_number_is_normalised():
    assert validate_card_number("4242-4242 4242-4242") == "4242424242424242"


def test_short_card_number_is_rejected():
    with pytest.raises(ValidationError, match="12 to 19 digits"):
        validate_card_number("42424242")


def test_card_number_failing_luhn_is_rejected():
    with pytest.raises(ValidationError, match="Luhn"):
        validate_card_number("4242424242424241")


def test_currency_is_upper_cased_and_checked():
    assert validate_currency("eur") == "EUR"
    with pytest.raises(ValidationError):
        validate_currency("DOGE")
    with pytest.raises(ValidationError):
        validate_currency(None)


@pytest.mark.parametrize("amount", [49, 10_000_001, 12.5, "100", True])
def test_bad_amounts_are_rejected(amount):
    with pytest.raises(ValidationError):
        validate_amount(amount)


def test_expiry_in_the_past_is_rejected():
    today = dt.date(2026, 5, 17)
    validate_expiry(5, 2026, today)
    with pytest.raises(ValidationError, match="expired"):
        validate_expiry(4, 2026, today)
    with pytest.raises(ValidationError, match="1-12"):
        validate_expiry(13, 2030, today)


def test_payment_request_is_cleaned():
    cleaned = validate_payment_request(
        {"amount": 2500, "currency": "eur", "method": "credit_card", "card_number": VISA_TEST})
    assert cleaned == {"amount": 2500, "currency": "EUR", "method": "credit_card", "card_last4": "4242"}


def test_card_payment_needs_a_card_number():
    with pytest.raises(ValidationError, match="card_number"):
        validate_payment_request({"amount": 2500, "currency": "EUR", "method": "credit_card"})


def test_paypal_payment_needs_no_card():
    cleaned = validate_payment_request({"amount": 900, "currency": "USD", "method": "paypal"})
    assert "card_last4" not in cleaned


def test_request_must_be_an_object():
    with pytest.raises(ValidationError, match="JSON object"):
        validate_payment_request(["amount", 10])

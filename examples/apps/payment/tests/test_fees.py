import pytest

from payment.fees import UnknownMethod, calculate_fee, cheapest_method, net_amount


def test_credit_card_fee_is_percentage_plus_fixed():
    assert calculate_fee(10_000, "credit_card") == 290 + 30


def test_paypal_fee_rounds_half_up():
    # 3.4% of 1015 = 34.51 -> 35, plus 35 fixed
    assert calculate_fee(1015, "paypal") == 70


def test_bank_transfer_fee_is_a_small_percentage():
    assert calculate_fee(10_000, "bank_transfer") == 80


def test_bank_transfer_fee_is_capped():
    assert calculate_fee(1_000_000, "bank_transfer") == 500


def test_minimum_fee_applies_to_tiny_amounts():
    assert calculate_fee(100, "bank_transfer") == 5


def test_zero_amount_has_no_fee():
    assert calculate_fee(0, "credit_card") == 0


def test_negative_amount_is_rejected():
    with pytest.raises(ValueError, match="negative"):
        calculate_fee(-1, "paypal")


def test_unknown_method_is_rejected():
    with pytest.raises(UnknownMethod, match="bitcoin"):
        calculate_fee(100, "bitcoin")


def test_net_amount_is_amount_minus_fee():
    assert net_amount(10_000, "credit_card") == 10_000 - 320


@pytest.mark.parametrize(("amount", "best"), [(1_000, "bank_transfer"), (5_000, "bank_transfer")])
def test_cheapest_method(amount, best):
    assert cheapest_method(amount) == best


def test_cheapest_method_among_given_choices():
    assert cheapest_method(2_000, ["paypal", "credit_card"]) == "credit_card"

import pytest

from payment.refunds import RefundError, plan_refund, refundable_amount, returned_fee, status_after


def test_refundable_amount_subtracts_earlier_refunds():
    assert refundable_amount(10_000, [2_500, 1_000]) == 6_500


def test_full_refund_by_default():
    assert plan_refund(10_000, [2_500]) == 7_500


def test_partial_refund():
    assert plan_refund(10_000, [], 4_000) == 4_000


def test_refund_above_remaining_is_refused():
    with pytest.raises(RefundError, match="exceeds the refundable 1000"):
        plan_refund(10_000, [9_000], 1_001)


@pytest.mark.parametrize("requested", [0, -5])
def test_non_positive_refund_is_refused(requested):
    with pytest.raises(RefundError, match="positive"):
        plan_refund(10_000, [], requested)


def test_fully_refunded_payment_cannot_be_refunded_again():
    with pytest.raises(RefundError, match="already fully refunded"):
        plan_refund(10_000, [10_000])


def test_returned_fee_is_pro_rata_and_rounded_down():
    assert returned_fee(290, 5_000, 10_000) == 145
    assert returned_fee(290, 3_333, 10_000) == 96


def test_status_after_refunds():
    assert status_after(10_000, []) == "confirmed"
    assert status_after(10_000, [1]) == "partially_refunded"
    assert status_after(10_000, [4_000, 6_000]) == "refunded"

"""Refund rules: partial refunds, what remains refundable, and the fee share given back."""

from __future__ import annotations


class RefundError(ValueError):
    pass


def refundable_amount(paid: int, refunds: list[int]) -> int:
    return max(paid - sum(refunds), 0)


def plan_refund(paid: int, refunds: list[int], requested: int | None = None) -> int:
    """The amount to refund now; ``None`` refunds everything that remains."""
    remaining = refundable_amount(paid, refunds)
    if remaining == 0:
        raise RefundError("payment is already fully refunded")
    if requested is None:
        return remaining
    if requested <= 0:
        raise RefundError("refund amount must be positive")
    if requested > remaining:
        raise RefundError(f"refund of {requested} exceeds the refundable {remaining}")
    return requested


def returned_fee(percentage_fee: int, refund: int, paid: int) -> int:
    """The percentage part of the fee is returned pro rata (rounded down); fixed parts are kept."""
    if paid <= 0:
        raise RefundError("paid amount must be positive")
    return percentage_fee * refund // paid


def status_after(paid: int, refunds: list[int]) -> str:
    refunded = sum(refunds)
    if refunded == 0:
        return "confirmed"
    return "refunded" if refunded >= paid else "partially_refunded"

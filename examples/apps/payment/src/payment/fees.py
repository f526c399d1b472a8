"""Processing fees per payment method, in minor units."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# method -> (percentage of the amount, fixed part in minor units)
FEE_SCHEDULE: dict[str, tuple[Decimal, int]] = {
    "credit_card": (Decimal("0.029"), 30),
    "paypal": (Decimal("0.034"), 35),
    "bank_transfer": (Decimal("0.008"), 0),
}
BANK_TRANSFER_FEE_CAP = 500
MINIMUM_FEE = 5


class UnknownMethod(ValueError):
    pass


def calculate_fee(amount: int, method: str) -> int:
    """The fee for charging ``amount`` minor units with ``method``."""
    if amount < 0:
        raise ValueError("amount must not be negative")
    try:
        rate, fixed = FEE_SCHEDULE[method]
    except KeyError:
        raise UnknownMethod(f"unknown payment method {method!r}") from None
    if amount == 0:
        return 0
    fee = int((Decimal(amount) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP)) + fixed
    if method == "bank_transfer":
        fee = min(fee, BANK_TRANSFER_FEE_CAP)
    return max(fee, MINIMUM_FEE)


def net_amount(amount: int, method: str) -> int:
    """What the merchant receives after the fee."""
    return amount - calculate_fee(amount, method)


def cheapest_method(amount: int, methods: list[str] | None = None) -> str:
    """The method with the lowest fee for ``amount``; ties go to the first listed."""
    candidates = methods or list(FEE_SCHEDULE)
    return min(candidates, key=lambda m: calculate_fee(amount, m))

"""Payment lifecycle: create (pending) -> confirm; with fees applied and ownership checked."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from payment.db import PaymentRepository
from payment.fees import calculate_fee
from payment.validation import validate_payment_request


class PaymentNotFound(LookupError):
    pass


class Forbidden(PermissionError):
    pass


class InvalidTransition(ValueError):
    pass


TRANSITIONS = {"pending": {"confirmed", "cancelled"}, "confirmed": {"refunded"}}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PaymentService:
    def __init__(self, repo: PaymentRepository, *, clock: Callable[[], dt.datetime] = _utcnow,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self.repo, self.clock, self.new_id = repo, clock, new_id

    def create(self, user_id: str, request: Any) -> dict[str, Any]:
        cleaned = validate_payment_request(request)
        payment = {
            "id": self.new_id(),
            "user_id": user_id,
            "fee": calculate_fee(cleaned["amount"], cleaned["method"]),
            "status": "pending",
            "card_last4": cleaned.pop("card_last4", None),
            "created_at": self.clock().isoformat(),
            **cleaned,
        }
        self.repo.insert(payment)
        return payment

    def get(self, payment_id: str, user_id: str) -> dict[str, Any]:
        payment = self.repo.get(payment_id)
        if payment is None:
            raise PaymentNotFound(f"no payment {payment_id}")
        if payment["user_id"] != user_id:
            raise Forbidden(f"payment {payment_id} belongs to another user")
        return payment

    def transition(self, payment_id: str, user_id: str, status: str) -> dict[str, Any]:
        payment = self.get(payment_id, user_id)
        if status not in TRANSITIONS.get(payment["status"], set()):
            raise InvalidTransition(f"cannot go from {payment['status']} to {status}")
        self.repo.set_status(payment_id, status)
        return {**payment, "status": status}

    def confirm(self, payment_id: str, user_id: str) -> dict[str, Any]:
        return self.transition(payment_id, user_id, "confirmed")

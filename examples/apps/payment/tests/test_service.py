import datetime as dt
import itertools

import pytest

from payment.db import Database, PaymentRepository
from payment.service import Forbidden, InvalidTransition, PaymentNotFound, PaymentService
from payment.validation import ValidationError

REQUEST = {"amount": 10_000, "currency": "EUR", "method": "credit_card", "card_number": "4242424242424242"}


@pytest.fixture
def service(db_url):
    counter = itertools.count(1)
    with Database(db_url) as db:
        yield PaymentService(PaymentRepository(db),
                             clock=lambda: dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC),
                             new_id=lambda: f"pay{next(counter)}")


def test_create_applies_fee_and_starts_pending(service):
    payment = service.create("u1", REQUEST)
    assert payment == {"id": "pay1", "user_id": "u1", "amount": 10_000, "currency": "EUR",
                       "method": "credit_card", "fee": 320, "status": "pending", "card_last4": "4242",
                       "created_at": "2026-03-01T12:00:00+00:00"}
    assert service.get("pay1", "u1") == payment


def test_invalid_request_creates_nothing(service):
    with pytest.raises(ValidationError):
        service.create("u1", {**REQUEST, "amount": 1})
    assert service.repo.for_user("u1") == []


def test_confirm_pending_payment(service):
    service.create("u1", REQUEST)
    assert service.confirm("pay1", "u1")["status"] == "confirmed"
    assert service.get("pay1", "u1")["status"] == "confirmed"


def test_confirm_twice_is_an_invalid_transition(service):
    service.create("u1", REQUEST)
    service.confirm("pay1", "u1")
    with pytest.raises(InvalidTransition, match="confirmed to confirmed"):
        service.confirm("pay1", "u1")


def test_other_users_payment_is_forbidden(service):
    service.create("u1", REQUEST)
    with pytest.raises(Forbidden):
        service.get("pay1", "u2")
    with pytest.raises(Forbidden):
        service.confirm("pay1", "u2")


def test_missing_payment_is_not_found(service):
    with pytest.raises(PaymentNotFound, match="nope"):
        service.get("nope", "u1")

import socket

import pytest

from web.client import PaymentClient, PaymentNotFound, PaymentServiceError, ServiceUnavailable


def test_create_get_and_confirm_through_the_api(fake_payment_service):
    client = PaymentClient(fake_payment_service, token="token-ok")
    created = client.create_payment(2500, "EUR", "credit_card", card_number="4242424242424242")
    assert created["status"] == "pending"
    assert client.get_payment(created["id"]) == created
    assert client.confirm_payment(created["id"])["status"] == "confirmed"


def test_bad_token_raises_with_status_and_message(fake_payment_service):
    with pytest.raises(PaymentServiceError) as info:
        PaymentClient(fake_payment_service, token="wrong").get_payment("pay-1")
    assert (info.value.status, info.value.message) == (401, "Unauthorized: Invalid token")


def test_missing_payment_is_not_found(fake_payment_service):
    with pytest.raises(PaymentNotFound):
        PaymentClient(fake_payment_service, token="token-ok").get_payment("pay-404")


def test_confirming_twice_is_a_conflict(fake_payment_service):
    client = PaymentClient(fake_payment_service, token="token-ok")
    payment = client.create_payment(900, "USD", "paypal")
    client.confirm_payment(payment["id"])
    with pytest.raises(PaymentServiceError) as info:
        client.confirm_payment(payment["id"])
    assert info.value.status == 409


def test_service_down_is_unavailable():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = PaymentClient(f"http://127.0.0.1:{port}", token="token-ok", timeout=2)
    assert not client.healthy()
    with pytest.raises(ServiceUnavailable, match="ConnectionError"):
        client.get_payment("pay-1")


def test_base_url_comes_from_the_environment(monkeypatch, fake_payment_service):
    monkeypatch.setenv("PAYMENT_SERVICE_URL", fake_payment_service + "/")
    client = PaymentClient(token="token-ok")
    assert client.base_url == fake_payment_service
    assert client.healthy()
    monkeypatch.delenv("PAYMENT_SERVICE_URL")
    with pytest.raises(ValueError, match="PAYMENT_SERVICE_URL"):
        PaymentClient()

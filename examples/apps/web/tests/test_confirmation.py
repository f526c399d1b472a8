"""The confirmation page for a real payment.

``test_shows_payment`` is the last step of the end-to-end-payment scenario: it gets ``payment_id`` and
``auth_token`` from earlier steps and reads the payment from the running payment service.
"""

import os

import pytest

from web.client import PaymentClient
from web.formatting import status_label
from web.render import render_confirmation


def test_shows_payment(testpilot_inputs):
    if not os.environ.get("PAYMENT_SERVICE_URL"):
        pytest.skip("scenario-only: PAYMENT_SERVICE_URL not set")
    for name in ("payment_id", "auth_token"):
        if name not in testpilot_inputs:
            pytest.skip(f"scenario-only: input {name!r} comes from an earlier scenario step")
    client = PaymentClient(token=testpilot_inputs["auth_token"])
    payment = client.get_payment(testpilot_inputs["payment_id"])
    html = render_confirmation(payment)
    assert f'data-payment-id="{payment["id"]}"' in html
    assert f"<td>{status_label(payment['status'])}</td>" in html


def test_confirmation_page_from_the_service(fake_payment_service):
    client = PaymentClient(fake_payment_service, token="token-ok")
    payment = client.confirm_payment(client.create_payment(4999, "EUR", "paypal")["id"])
    html = render_confirmation(client.get_payment(payment["id"]))
    assert "<h1>Thank you for your payment</h1>" in html
    assert "<td>€49.99</td>" in html
    assert "<td>PayPal</td>" in html

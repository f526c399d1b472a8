"""Scenario steps (end-to-end-payment): they call the running payment service.

Run through Testpilot, ``testpilot_inputs`` holds ``auth_token`` (from user-service's test_login) and
``payment_id`` (from test_create_payment); what a step puts in ``testpilot_outputs`` goes to later steps.
"""

import json
import os
import urllib.error
import urllib.request

import pytest

from payment.fees import calculate_fee


def _service_url():
    url = os.environ.get("PAYMENT_SERVICE_URL")
    if not url:
        pytest.skip("scenario-only: PAYMENT_SERVICE_URL not set")
    return url.rstrip("/")


def _input(inputs, name):
    if name not in inputs:
        pytest.skip(f"scenario-only: input {name!r} comes from an earlier scenario step")
    return inputs[name]


def _call(method, url, token, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_create_payment(testpilot_inputs, testpilot_outputs):
    base = _service_url()
    token = _input(testpilot_inputs, "auth_token")
    body = {"amount": 4999, "currency": "EUR", "method": "credit_card", "card_number": "4242424242424242"}
    status, payment = _call("POST", f"{base}/payments", token, body)
    assert status == 201, payment
    assert payment["status"] == "pending"
    assert payment["fee"] == calculate_fee(4999, "credit_card")
    testpilot_outputs["payment_id"] = payment["id"]


def test_confirm_payment(testpilot_inputs, testpilot_outputs):
    base = _service_url()
    token = _input(testpilot_inputs, "auth_token")
    payment_id = _input(testpilot_inputs, "payment_id")
    status, payment = _call("POST", f"{base}/payments/{payment_id}/confirm", token)
    assert status == 200, payment
    assert payment["status"] == "confirmed"
    status, fetched = _call("GET", f"{base}/payments/{payment_id}", token)
    assert (status, fetched["status"]) == (200, "confirmed")
    testpilot_outputs["status"] = payment["status"]

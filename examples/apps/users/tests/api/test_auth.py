"""Scenario step (end-to-end-payment): logs in against the running user service.

Publishes ``token`` through ``testpilot_outputs``; Testpilot hands it to the payment steps as ``auth_token``.
"""

import json
import os
import urllib.error
import urllib.request

import pytest

DEMO_EMAIL = "alice@example.com"
DEMO_PASSWORD = "wonderland-42"


def call(method, url, body=None, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _service_url():
    url = os.environ.get("USER_SERVICE_URL")
    if not url:
        pytest.skip("scenario-only: USER_SERVICE_URL not set")
    return url.rstrip("/")


def test_login(testpilot_outputs):
    base = _service_url()
    status, body = call("POST", f"{base}/login", {"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert status == 200, body
    status, me = call("GET", f"{base}/me", token=body["token"])
    assert (status, me["email"]) == (200, DEMO_EMAIL)
    testpilot_outputs["token"] = body["token"]


def test_login_with_wrong_password_is_refused():
    base = _service_url()
    status, body = call("POST", f"{base}/login", {"email": DEMO_EMAIL, "password": "not-the-password-1"})
    assert status == 401, body

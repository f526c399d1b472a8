"""Calls the payment service's HTTP API (base URL from ``PAYMENT_SERVICE_URL``)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class PaymentServiceError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"payment service answered {status}: {message}")
        self.status, self.message = status, message


class PaymentNotFound(PaymentServiceError):
    pass


class ServiceUnavailable(ConnectionError):
    pass


class PaymentClient:
    def __init__(self, base_url: str | None = None, token: str | None = None, timeout: float = 10) -> None:
        base_url = base_url or os.environ.get("PAYMENT_SERVICE_URL")
        if not base_url:
            raise ValueError("no payment service URL: pass base_url or set PAYMENT_SERVICE_URL")
        self.base_url, self.token, self.timeout = base_url.rstrip("/"), token, timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", "")
            except (json.JSONDecodeError, AttributeError):
                message = exc.reason
            error = PaymentNotFound if exc.code == 404 else PaymentServiceError
            raise error(exc.code, str(message)) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceUnavailable(f"ConnectionError: payment service at {self.base_url}: {exc}") from None

    def get_payment(self, payment_id: str) -> dict[str, Any]:
        return self._call("GET", f"/payments/{urllib.parse.quote(payment_id, safe='')}")

    def create_payment(self, amount: int, currency: str, method: str, **extra: Any) -> dict[str, Any]:
        return self._call("POST", "/payments", {"amount": amount, "currency": currency, "method": method, **extra})

    def confirm_payment(self, payment_id: str) -> dict[str, Any]:
        return self._call("POST", f"/payments/{urllib.parse.quote(payment_id, safe='')}/confirm")

    def healthy(self) -> bool:
        try:
            return self._call("GET", "/health").get("status") == "ok"
        except (PaymentServiceError, ServiceUnavailable):
            return False

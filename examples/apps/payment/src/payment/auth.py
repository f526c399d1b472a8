"""Checks a bearer token by asking the user service who it belongs to (GET /me)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class Unauthorized(PermissionError):
    pass


class UserServiceUnavailable(ConnectionError):
    pass


def bearer_token(header: str | None) -> str:
    if not header or not header.startswith("Bearer ") or not header[7:].strip():
        raise Unauthorized("Unauthorized: missing bearer token")
    return header[7:].strip()


def verify_token(user_service_url: str, token: str, timeout: float = 5.0) -> dict[str, Any]:
    """Return the user the token belongs to; raise Unauthorized or UserServiceUnavailable."""
    request = urllib.request.Request(user_service_url.rstrip("/") + "/me",
                                     headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (URL is config)
            user: dict[str, Any] = json.loads(response.read())
            return user
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise Unauthorized("Unauthorized: Invalid token") from None
        raise UserServiceUnavailable(f"user service answered {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise UserServiceUnavailable(f"ConnectionError: user service at {user_service_url}: {exc}") from None

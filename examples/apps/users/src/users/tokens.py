"""Signed, expiring bearer tokens: ``<base64url payload>.<hex HMAC-SHA256>``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json


class InvalidToken(ValueError):
    pass


def _sign(payload: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def issue_token(user_id: str, secret: str, *, now: float, ttl: float = 3600) -> str:
    payload = json.dumps({"sub": user_id, "exp": now + ttl}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _sign(payload, secret)


def verify_token(token: str, secret: str, *, now: float) -> str:
    """Return the user id the token was issued for; raise InvalidToken otherwise."""
    try:
        encoded, signature = token.split(".")
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        raise InvalidToken("Invalid token: malformed") from None
    if not hmac.compare_digest(_sign(payload, secret), signature):
        raise InvalidToken("Invalid token: bad signature")
    claims = json.loads(payload)
    if claims["exp"] <= now:
        raise InvalidToken("Invalid token: expired")
    return str(claims["sub"])

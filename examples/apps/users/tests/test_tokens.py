import pytest

from users.tokens import InvalidToken, issue_token, verify_token

NOW = 1_800_000_000.0


def test_token_roundtrip():
    token = issue_token("user-7", "s3cret", now=NOW)
    assert verify_token(token, "s3cret", now=NOW + 10) == "user-7"


def test_token_signed_with_another_secret_is_rejected():
    token = issue_token("user-7", "s3cret", now=NOW)
    with pytest.raises(InvalidToken, match="bad signature"):
        verify_token(token, "other", now=NOW)


def test_expired_token_is_rejected():
    token = issue_token("user-7", "s3cret", now=NOW, ttl=60)
    assert verify_token(token, "s3cret", now=NOW + 59) == "user-7"
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(token, "s3cret", now=NOW + 60)


def test_tampered_payload_is_rejected():
    token = issue_token("user-7", "s3cret", now=NOW)
    forged = issue_token("user-1", "s3cret", now=NOW).split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(InvalidToken, match="bad signature"):
        verify_token(forged, "s3cret", now=NOW)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "!!!.deadbeef"])
def test_malformed_tokens_are_rejected(token):
    with pytest.raises(InvalidToken, match="Invalid token"):
        verify_token(token, "s3cret", now=NOW)

import pytest

from payment.auth import Unauthorized, UserServiceUnavailable, bearer_token, verify_token


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer    "])
def test_missing_or_malformed_bearer_header(header):
    with pytest.raises(Unauthorized):
        bearer_token(header)


def test_bearer_token_is_extracted():
    assert bearer_token("Bearer abc.def") == "abc.def"


def test_valid_token_returns_the_user(fake_user_service):
    assert verify_token(fake_user_service, "token-u42")["id"] == "u42"


def test_invalid_token_is_unauthorized(fake_user_service):
    with pytest.raises(Unauthorized, match="Invalid token"):
        verify_token(fake_user_service, "forged")


def test_user_service_down_is_a_connection_error():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(UserServiceUnavailable, match="ConnectionError"):
        verify_token(f"http://127.0.0.1:{port}", "token-u1", timeout=2)

def _login(http, base, password="wonderland-42"):
    return http("POST", f"{base}/login", {"email": "alice@example.com", "password": password})


def test_health_reports_user_count(users_service, http):
    assert http("GET", f"{users_service}/health") == (200, {"status": "ok", "users": 1})


def test_login_returns_a_token_that_me_accepts(users_service, http):
    status, body = _login(http, users_service)
    assert status == 200
    assert body["user_id"] == "user-1"
    status, me = http("GET", f"{users_service}/me", token=body["token"])
    assert (status, me["email"]) == (200, "alice@example.com")


def test_wrong_password_is_unauthorized(users_service, http):
    status, body = _login(http, users_service, password="nope-nope-1")
    assert status == 401
    assert "Unauthorized" in body["error"]


def test_me_without_or_with_bad_token(users_service, http):
    assert http("GET", f"{users_service}/me")[0] == 401
    status, body = http("GET", f"{users_service}/me", token="garbage")
    assert (status, body["error"]) == (401, "Invalid token: malformed")


def test_token_expires_with_the_clock(users_service, http, clock):
    token = _login(http, users_service)[1]["token"]
    clock.now += 61
    status, body = http("GET", f"{users_service}/me", token=token)
    assert (status, body["error"]) == (401, "Invalid token: expired")


def test_bad_login_body_and_unknown_paths(users_service, http):
    assert http("POST", f"{users_service}/login", {"email": "x"})[0] == 400
    assert http("GET", f"{users_service}/users")[0] == 404
    assert http("POST", f"{users_service}/logout", {})[0] == 404

BODY = {"amount": 2500, "currency": "EUR", "method": "credit_card", "card_number": "4242 4242 4242 4242"}


def test_health(payment_service, http):
    assert http("GET", f"{payment_service}/health") == (200, {"status": "ok"})


def test_create_needs_a_token(payment_service, http):
    status, body = http("POST", f"{payment_service}/payments", BODY)
    assert status == 401
    assert "Unauthorized" in body["error"]


def test_create_with_forged_token_is_unauthorized(payment_service, http):
    status, body = http("POST", f"{payment_service}/payments", BODY, token="forged")
    assert (status, body["error"]) == (401, "Unauthorized: Invalid token")


def test_create_get_and_confirm(payment_service, http):
    status, created = http("POST", f"{payment_service}/payments", BODY, token="token-u1")
    assert status == 201
    assert (created["status"], created["fee"], created["card_last4"]) == ("pending", 103, "4242")
    assert http("GET", f"{payment_service}/payments/{created['id']}", token="token-u1") == (200, created)
    status, confirmed = http("POST", f"{payment_service}/payments/{created['id']}/confirm", token="token-u1")
    assert (status, confirmed["status"]) == (200, "confirmed")
    status, again = http("POST", f"{payment_service}/payments/{created['id']}/confirm", token="token-u1")
    assert status == 409


def test_invalid_body_is_a_bad_request(payment_service, http):
    status, body = http("POST", f"{payment_service}/payments", {**BODY, "currency": "DOGE"}, token="token-u1")
    assert status == 400
    assert "DOGE" in body["error"]


def test_other_users_payment_is_forbidden(payment_service, http):
    _, created = http("POST", f"{payment_service}/payments", BODY, token="token-u1")
    status, _ = http("GET", f"{payment_service}/payments/{created['id']}", token="token-u2")
    assert status == 403


def test_unknown_payment_and_path(payment_service, http):
    assert http("GET", f"{payment_service}/payments/nope", token="token-u1")[0] == 404
    assert http("GET", f"{payment_service}/refunds", token="token-u1")[0] == 404

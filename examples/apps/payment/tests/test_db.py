import pytest

from payment.db import Database, DatabaseUnavailable, PaymentRepository, sqlite_path


def _payment(pid="p1", user="u1", created="2026-01-01T00:00:00"):
    return {"id": pid, "user_id": user, "amount": 2500, "currency": "EUR", "method": "paypal",
            "fee": 120, "status": "pending", "card_last4": None, "created_at": created}


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:///payments.db", "payments.db"),
    ("sqlite:////tmp/x/payments.db", "/tmp/x/payments.db"),
    ("sqlite://", ":memory:"),
])
def test_sqlite_url_to_path(url, path):
    assert sqlite_path(url) == path


def test_insert_and_get_roundtrip(db_url):
    with Database(db_url) as db:
        repo = PaymentRepository(db)
        repo.insert(_payment())
        assert repo.get("p1") == _payment()
        assert repo.get("missing") is None


def test_data_survives_reconnecting(db_url):
    with Database(db_url) as db:
        PaymentRepository(db).insert(_payment())
    with Database(db_url) as db:
        assert db.table_exists("payments")
        assert PaymentRepository(db).get("p1")["amount"] == 2500


def test_set_status_and_list_for_user(db_url):
    with Database(db_url) as db:
        repo = PaymentRepository(db)
        repo.insert(_payment("p2", created="2026-01-02T00:00:00"))
        repo.insert(_payment("p1", created="2026-01-01T00:00:00"))
        repo.insert(_payment("p3", user="u2"))
        repo.set_status("p2", "confirmed")
        assert [(p["id"], p["status"]) for p in repo.for_user("u1")] == [("p1", "pending"), ("p2", "confirmed")]


def test_unreachable_database_is_reported(tmp_path):
    with pytest.raises(DatabaseUnavailable, match="database is unreachable"):
        Database(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")


def test_unknown_scheme_is_rejected():
    with pytest.raises(ValueError, match="oracle"):
        Database("oracle://scott@db/orcl")

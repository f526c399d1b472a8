"""Checks the rows Testpilot seeds into the payment-db (datasets ``users`` and ``payment_methods``)."""

import os

import pytest

from payment.db import Database


@pytest.fixture
def seeded_db():
    url = os.environ.get("TESTPILOT_DB_PAYMENT_DB")
    if not url:
        pytest.skip("needs seeded data: TESTPILOT_DB_PAYMENT_DB not set")
    with Database(url) as db:
        if not (db.table_exists("users") and db.table_exists("payment_methods")):
            pytest.skip("needs seeded data: tables users/payment_methods not in TESTPILOT_DB_PAYMENT_DB")
        yield db


def test_seeded_tables_have_rows(seeded_db):
    assert seeded_db.execute("SELECT COUNT(*) FROM users")[0][0] > 0
    assert seeded_db.execute("SELECT COUNT(*) FROM payment_methods")[0][0] > 0


@pytest.mark.depends_on("tests/test_seeded_data.py::test_seeded_tables_have_rows")
def test_payment_methods_reference_users(seeded_db):
    user_ids = {str(row[0]) for row in seeded_db.execute("SELECT id FROM users")}
    dangling = [str(row[0]) for row in seeded_db.execute("SELECT user_id FROM payment_methods")
                if str(row[0]) not in user_ids]
    assert dangling == []


def test_payment_method_types_are_known(seeded_db):
    types = {row[0] for row in seeded_db.execute("SELECT type FROM payment_methods")}
    assert types <= {"credit_card", "paypal", "bank_transfer"}

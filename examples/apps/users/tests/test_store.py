import pytest

from users.store import DuplicateUser, UserStore
from users.validation import InvalidInput


def test_added_user_gets_an_id_and_a_hash(store):
    bob = store.add("Bob", "bob@example.com", "builder-99")
    assert bob.id == "user-2"
    assert "builder-99" not in bob.password_hash
    assert store.get("user-2") == bob
    assert len(store) == 2


def test_duplicate_email_is_refused_case_insensitively(store):
    with pytest.raises(DuplicateUser):
        store.add("Other Alice", "ALICE@example.com", "different-1")


def test_invalid_input_is_refused_and_nothing_stored():
    store = UserStore(iterations=1_000)
    with pytest.raises(InvalidInput):
        store.add("Eve", "eve@", "password-1")
    assert len(store) == 0


def test_authenticate(store):
    assert store.authenticate("alice@example.com", "wonderland-42").name == "Alice Liddell"
    assert store.authenticate("alice@example.com", "wrong-password-1") is None
    assert store.authenticate("nobody@example.com", "wonderland-42") is None


def test_public_view_hides_the_password_hash(store):
    alice = store.find_by_email("alice@example.com")
    assert alice.public() == {"id": "user-1", "name": "Alice Liddell", "email": "alice@example.com"}


def test_unknown_user_is_none(store):
    assert store.get("user-999") is None
    assert store.find_by_email("ghost@example.com") is None

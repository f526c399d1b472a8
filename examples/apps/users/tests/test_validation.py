import pytest

from users.validation import InvalidInput, normalize_email, validate_email, validate_name, validate_password


def test_normalize_email_lowercases_only_the_domain():
    assert normalize_email("  Alice@Example.COM ") == "Alice@example.com"


@pytest.mark.parametrize("email", ["a@b.io", "first.last+tag@sub.example.org"])
def test_valid_emails(email):
    assert validate_email(email) == email


@pytest.mark.parametrize("email", ["no-at-sign", "a@b", "@example.com", "a b@example.com"])
def test_invalid_emails(email):
    with pytest.raises(InvalidInput, match="invalid e-mail"):
        validate_email(email)


def test_name_whitespace_is_collapsed():
    assert validate_name("  Ada   Lovelace ") == "Ada Lovelace"


def test_empty_or_long_names_are_rejected():
    with pytest.raises(InvalidInput):
        validate_name("   ")
    with pytest.raises(InvalidInput):
        validate_name("x" * 101)


@pytest.mark.parametrize(("password", "ok"), [
    ("short-1", False), ("onlyletters", False), ("12345678901", False), ("letters-and-1", True)])
def test_password_rules(password, ok):
    if ok:
        assert validate_password(password) == password
    else:
        with pytest.raises(InvalidInput):
            validate_password(password)

from users.passwords import hash_password, verify_password


def test_hash_verifies_with_the_right_password():
    stored = hash_password("correct horse", iterations=1_000)
    assert verify_password("correct horse", stored)


def test_hash_rejects_a_wrong_password():
    stored = hash_password("correct horse", iterations=1_000)
    assert not verify_password("correct hose", stored)


def test_same_password_gets_different_salts():
    assert hash_password("pw-123456", iterations=1_000) != hash_password("pw-123456", iterations=1_000)


def test_hash_is_deterministic_for_a_given_salt():
    salt = bytes(range(16))
    first = hash_password("pw-123456", salt=salt, iterations=1_000)
    assert first == hash_password("pw-123456", salt=salt, iterations=1_000)
    assert first.startswith("pbkdf2_sha256$1000$000102")


def test_malformed_or_foreign_hashes_never_verify():
    assert not verify_password("x", "not-a-hash")
    assert not verify_password("x", "md5$1$00$abc")

"""Checks on user input: e-mail addresses, names and passwords."""

from __future__ import annotations

import re

EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$")


class InvalidInput(ValueError):
    pass


def normalize_email(email: str) -> str:
    """Trim and lower-case the domain; the local part is case-sensitive by the RFC, so keep it."""
    local, _, domain = email.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if local else email.strip()


def validate_email(email: str) -> str:
    email = normalize_email(email)
    if not EMAIL.match(email):
        raise InvalidInput(f"invalid e-mail address {email!r}")
    return email


def validate_name(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= 100:
        raise InvalidInput("name must have 1 to 100 characters")
    return name


def validate_password(password: str) -> str:
    if len(password) < 8:
        raise InvalidInput("password must have at least 8 characters")
    if password.isalpha() or password.isdigit():
        raise InvalidInput("password must mix letters and other characters")
    return password

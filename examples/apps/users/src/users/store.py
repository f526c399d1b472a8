"""In-memory user accounts."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from users.passwords import ITERATIONS, hash_password, verify_password
from users.validation import validate_email, validate_name, validate_password


class DuplicateUser(ValueError):
    pass


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str
    password_hash: str

    def public(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "email": self.email}


class UserStore:
    def __init__(self, *, iterations: int = ITERATIONS) -> None:
        self._users: dict[str, User] = {}
        self._ids = itertools.count(1)
        self._iterations = iterations

    def add(self, name: str, email: str, password: str) -> User:
        email = validate_email(email)
        if self.find_by_email(email):
            raise DuplicateUser(f"{email} is already registered")
        user = User(f"user-{next(self._ids)}", validate_name(name), email,
                    hash_password(validate_password(password), iterations=self._iterations))
        self._users[user.id] = user
        return user

    def get(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    def find_by_email(self, email: str) -> User | None:
        wanted = email.strip().lower()
        return next((u for u in self._users.values() if u.email.lower() == wanted), None)

    def authenticate(self, email: str, password: str) -> User | None:
        user = self.find_by_email(email)
        return user if user and verify_password(password, user.password_hash) else None

    def __len__(self) -> int:
        return len(self._users)

"""Seeded pools of Faker values, the reason generation is fast.

A Faker call costs 5-80 us; a pick from a list costs about 0.1 us. Each Faker-backed field asks Faker for
at most ``POOL_SIZE`` values, from a Faker instance seeded with a hash of (locale, dataset seed, version,
dataset, field, pool), and every row then combines pool entries by seeded index: first x last names,
user names x mail domains, and locale-formatted phone numbers and addresses whose inner digits are redrawn.
A dataset no larger than the pool is Faker's own output, row for row.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import threading
from collections.abc import Callable
from typing import Any

from faker import Faker
from faker.providers import BaseProvider

POOL_SIZE = 1000
_FAKER_LOCK = threading.RLock()
_DIGITS = "0123456789"
# Faker attributes that are not value providers, so ``faker:<name>`` must not reach them.
_NOT_PROVIDERS = frozenset({"seed", "seed_instance", "seed_locale", "unique", "optional", "random",
                            "provider", "providers", "get_providers", "add_provider", "set_formatter",
                            "get_formatter", "format", "parse", "locales", "weights", "factories",
                            "items", "set_arguments", "get_arguments", "del_arguments"})


def derive_seed(*parts: Any) -> int:
    """A 64-bit seed from any parts; sha256, so it is the same in every process (unlike ``hash``)."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


@functools.lru_cache(maxsize=32)
def faker_for(locale: str) -> Faker:
    """One Faker per locale; raises AttributeError for an unknown locale."""
    return Faker(locale)


def provider_method(locale: str, provider: str) -> Callable[..., Any] | None:
    """The public Faker provider method named ``provider``, or None if there is none."""
    if provider.startswith("_") or provider in _NOT_PROVIDERS:
        return None
    try:
        method = getattr(faker_for(locale), provider)
    except AttributeError:
        return None
    owner = getattr(method, "__self__", None)
    return method if callable(method) and isinstance(owner, BaseProvider) else None


@functools.lru_cache(maxsize=256)
def _pool(locale: str, provider: str, args_json: str, size: int, seed: int) -> tuple[Any, ...]:
    args = json.loads(args_json)
    # One Faker per locale is shared, and seeding it is global to that instance: threads (a Prefect task
    # runner) must not interleave, or the pools would depend on timing.
    with _FAKER_LOCK:
        fake = faker_for(locale)
        fake.seed_instance(seed)
        method = getattr(fake, provider)
        return tuple(method(**args) for _ in range(size))


def clear_cache() -> None:
    """Forget cached pools (benchmarks use it so that every run pays for its Faker calls)."""
    _pool.cache_clear()


def pool(locale: str, provider: str, size: int, seed: int, args: dict[str, Any] | None = None) -> list[Any]:
    """``size`` values of ``provider``, the same for the same arguments in any process."""
    return list(_pool(locale, provider, json.dumps(args or {}, sort_keys=True, default=str), size, seed))


def pick(values: list[Any], n: int, rng: random.Random) -> list[Any]:
    r, k = rng.random, len(values)
    return [values[int(r() * k)] for _ in range(n)]


def vary_digits(text: str, rng: random.Random) -> str:
    """Redraw every digit but the first of each run: keeps the locale's format and leading digits."""
    r, out, previous = rng.random, [], False
    for char in text:
        if char in _DIGITS:
            out.append(_DIGITS[int(r() * 10)] if previous else char)
            previous = True
        else:
            out.append(char)
            previous = False
    return "".join(out)


def faker_column(kind: str, n: int, locale: str, seed: int, rng: random.Random, *,
                 provider: str = "", args: dict[str, Any] | None = None, max_chars: int = 200) -> list[Any]:
    """``n`` values of a Faker-backed field type (name, email, phone, address, text, faker)."""
    size = min(n, POOL_SIZE)
    small = n <= POOL_SIZE
    if kind == "name":
        if small:
            return pool(locale, "name", size, seed)
        first = pool(locale, "first_name", size, derive_seed(seed, "first"))
        last = pool(locale, "last_name", size, derive_seed(seed, "last"))
        return [f"{a} {b}" for a, b in zip(pick(first, n, rng), pick(last, n, rng), strict=True)]
    if kind == "email":
        if small:
            return pool(locale, "email", size, seed)
        users = pool(locale, "user_name", size, derive_seed(seed, "user"))
        # Reserved example domains only, as Faker's own email() uses: test data must never reach real inboxes.
        domains = sorted(set(pool(locale, "safe_domain_name", 50, derive_seed(seed, "domain"))))
        r = rng.random
        # Most real addresses past the first few thousand carry a number; it also spreads collisions.
        return [f"{u}{int(r() * 9999) + 1 if r() < 0.7 else ''}@{d}"
                for u, d in zip(pick(users, n, rng), pick(domains, n, rng), strict=True)]
    if kind in ("phone", "address"):
        values = pool(locale, "phone_number" if kind == "phone" else "address", size, seed)
        values = [v.replace("\n", ", ") for v in values]
        return values if small else [vary_digits(v, rng) for v in pick(values, n, rng)]
    if kind == "text":
        values = pool(locale, "text", size, seed, {"max_nb_chars": max_chars})
        return values if small else pick(values, n, rng)
    if kind == "faker":
        values = pool(locale, provider, size, seed, args)
        return values if small else pick(values, n, rng)
    raise ValueError(f"not a Faker-backed type: {kind}")

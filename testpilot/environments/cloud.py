"""Shared pieces of the cloud providers: ownership labels, injectable polling, and clean-up on failure.

Every resource a provider creates carries its pool, slot, owning run and expiry, so the reaper can
remove orphans without any other bookkeeping. Proxmox stores them as tags, Hetzner as labels.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from testpilot.errors import Diagnostics, ProvisioningError

T = TypeVar("T")
Sleep = Callable[[float], None]
Clock = Callable[[], float]

IDLE = "idle"  # run id of a released pool member: the reaper only looks at its expiry


@dataclass(frozen=True)
class Backoff:
    """Delays between polls: ``initial`` growing by ``factor`` up to ``maximum``. Tests pass zeros."""

    initial: float = 0.5
    factor: float = 1.5
    maximum: float = 5.0

    def delays(self) -> Iterator[float]:
        delay = self.initial
        while True:
            yield delay
            delay = min(self.maximum, delay * self.factor)


@dataclass(frozen=True)
class Ownership:
    """Who a resource belongs to, as written into its labels/tags."""

    pool: str
    slot: int
    run_id: str
    expires_at: int  # unix seconds


def safe_token(value: str) -> str:
    """A value that fits both Proxmox tags and Hetzner label values (alphanumerics, '-', '_', '.')."""
    cleaned = re.sub(r"[^a-z0-9_.-]+", "-", value.lower()).strip("-._")
    return cleaned[:63] or "none"


def poll(check: Callable[[Diagnostics], T | None], *, what: str, timeout: float, backoff: Backoff,
         sleep: Sleep = time.sleep, clock: Clock = time.monotonic, host: str = "",
         phase: str = "provision", hint: str = "") -> T:
    """Call ``check`` until it returns a value; on timeout raise ProvisioningError with what it saw."""
    diagnostics = Diagnostics()
    start = clock()
    for delay in backoff.delays():
        result = check(diagnostics)
        if result is not None:
            return result
        diagnostics.waited_seconds = clock() - start
        if diagnostics.waited_seconds >= timeout:
            raise ProvisioningError(f"timed out waiting for {what} on {host or 'the environment'} "
                                    f"({diagnostics.summary()})", host=host, phase=phase,
                                    hint=hint or f"raise the timeout or check {host} in the provider's console",
                                    diagnostics=diagnostics)
        sleep(min(delay, max(0.0, timeout - diagnostics.waited_seconds)))
    raise AssertionError("unreachable")  # pragma: no cover


def tcp_reachable(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False

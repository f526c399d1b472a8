"""Failure signatures: exception type + message with volatile parts removed + top project frames."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from testpilot.failures.frames import Frame, parse_frames
from testpilot.failures.records import FailureRecord

# Order matters: the specific shapes go before the bare-number rule that would eat their pieces.
_VOLATILE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"), "<ts>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<ts>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"(?:/private)?(?:/tmp|/var/tmp|/var/folders|/dev/shm)(?:/[\w.@+-]+)+/?|"
                r"[A-Za-z]:\\(?:[^\\\s]+\\)*Temp\\[^\s'\"]+"), "<tmp>"),
    (re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b"), "<hex>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<=\bport )\d+|(?<=\bport=)\d+|(?<=localhost:)\d+|(?<=\]:)\d+"), "<port>"),
    (re.compile(r"(?<![A-Za-z_])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"), "<n>"),
]
_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"<\w+>|[A-Za-z_][\w.]*|==|!=|<=|>=|[^\w\s]")
MAX_MESSAGE = 240  # long assertion diffs add noise, not identity
TOP_FRAMES = 3


# pytest's assertion rewriting explains values: "+  where 3.0 = <function total at 0x..>(..)" and
# "+    where <function total ..> = pricing.total". The called names say which code produced the bad value.
_WHERE_CALL = re.compile(r"where [^=\n]*?= (?:<(?:function|bound method|built-in method|method) ([\w.]+)|"
                         r"([A-Za-z_][\w.]*)\(|([A-Za-z_][\w.]*)$)", re.M)


def _callees(message: str) -> list[str]:
    names = list(dict.fromkeys(a or b or c for a, b, c in _WHERE_CALL.findall(message)))
    return [n for n in names if not any(o != n and o.endswith("." + n) for o in names)]


def normalise_message(message: str) -> str:
    """Remove numbers, hex addresses, UUIDs, temp paths, timestamps, IPs and ports; keep the first line.

    For pytest assertions the functions named in the "where" explanation are kept as ``(where f, g)``.
    """
    stripped = message.strip()
    text = stripped.split("\n", 1)[0]
    for pattern, placeholder in _VOLATILE:
        text = pattern.sub(placeholder, text)
    text = _SPACE.sub(" ", text)[:MAX_MESSAGE]
    if "where " in stripped and text.startswith("assert"):
        callees = _callees(stripped)
        if callees:
            text += f" (where {', '.join(callees[:3])})"
    return text


def _project_frames(frames: list[Frame], project_paths: tuple[str, ...]) -> list[Frame]:
    if project_paths:
        return [f for f in frames if any(p in f.path for p in project_paths)]
    return [f for f in frames if not f.is_library]


def key_frames(frames: list[Frame], project_paths: tuple[str, ...] = (), *, test_file: bool = True) -> list[str]:
    """Innermost project frames (``dir/file.py:function``), without line numbers so edits do not split.

    The test function itself is left out when deeper project frames exist, and reduced to its file when
    it is the only one: one root cause hits many tests, and their names must not split its cluster.
    With ``test_file=False`` (infrastructure failures) that file is left out too: a refused database
    is one cause whichever test met it.
    """
    project = _project_frames(frames, project_paths)
    inner = [f for f in project if not (f.is_test and (not f.function or f.function.startswith("test")))]
    if inner:
        return [f"{f.short_path}:{f.function}" for f in inner[-TOP_FRAMES:]]
    return [project[-1].short_path] if project and test_file else []


@dataclass(frozen=True, slots=True)
class Signature:
    """What identifies a failure's cause. ``key`` is exact identity; ``tokens`` feed near-duplicate matching."""

    exception_type: str
    message: str
    frames: tuple[str, ...]
    tokens: frozenset[str]

    @property
    def text(self) -> str:
        where = " <- ".join(reversed(self.frames))
        return f"{self.exception_type}: {self.message}" + (f" @ {where}" if where else "")

    @property
    def key(self) -> str:
        return hashlib.sha1(self.text.encode()).hexdigest()[:12]


def tokenise(exception_type: str, message: str, frames: tuple[str, ...]) -> frozenset[str]:
    tokens = set(_TOKEN.findall(message))
    tokens.add(f"type:{exception_type.rsplit('.', 1)[-1]}")
    tokens.update(f"frame:{f}" for f in frames)
    return frozenset(tokens)


def signature_of(record: FailureRecord, project_paths: tuple[str, ...] = (), *, system: bool = False) -> Signature:
    """The signature of one failure; ``system`` (an infrastructure failure) drops the test's own file."""
    exc = record.exception_type.rsplit(".", 1)[-1] or "Failure"
    # A KeyError's message is only the missing key, which is data: the frame says where the cause is.
    message = "<key>" if exc == "KeyError" else normalise_message(record.message)
    frames = tuple(key_frames(parse_frames(record.traceback), project_paths, test_file=not system))
    return Signature(exc, message, frames, tokenise(exc, message, frames))

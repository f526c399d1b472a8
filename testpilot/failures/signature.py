"""Failure signatures: the crash point, the exception type and the message's template with data masked.

The crash point is the innermost frame in project code (not the test, not a library): failures that meet in
the same faulty function share it whatever called them. When the only project frame is the test itself
(an assertion on a returned value), it is the functions the assertion explanation names, else the test file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from testpilot.failures.frames import Frame, parse_frames
from testpilot.failures.records import FailureRecord

# Order matters: the specific shapes go before the bare-number rule that would eat their pieces.
_VOLATILE: list[tuple[re.Pattern[str], str]] = [
    # Reprs first: "<Item object at 0x7f..>", "<function total at 0x..>", "<class 'x.Y'>".
    (re.compile(r"<[A-Za-z_][\w.]*(?: [^<>\n]*)?>"), "<repr>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"), "<ts>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<ts>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"(?:/private)?(?:/tmp|/var/tmp|/var/folders|/dev/shm)(?:/[\w.@+-]+)+/?|"
                r"[A-Za-z]:\\(?:[^\\\s]+\\)*Temp\\[^\s'\"]+"), "<tmp>"),
    (re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b"), "<hex>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<=\bport )\d+|(?<=\bport=)\d+|(?<=localhost:)\d+|(?<=\]:)\d+"), "<port>"),
    # Quoted values and identifiers: "has no attribute 'x'", "Unknown string format: 'abc'", Java's "\"item\"".
    (re.compile(r"(?<![\w'])'(?:[^'\\\n]|\\.)*'(?![\w'])|\"(?:[^\"\\\n]|\\.)*\"|`[^`\n]*`"), "<q>"),
    (re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.@+-]+){2,}[/\\]?"), "<path>"),
    # Data in known message shapes, quoted or not: "Unknown string format: 2023-13-45 foo".
    (re.compile(r"(?<=unknown string format: ).+|(?<=invalid literal for int\(\) with base )\d+: .+|"
                r"(?<=could not convert string to float: ).+|(?<=time data ).+(?= does not match format)",
                re.IGNORECASE), "<data>"),
    # Any word with a digit in it is a value: "1.2.3-rc.1", "2023-13-45", "41.5", "v2".
    (re.compile(r"(?<![A-Za-z_])[-+]?[^\s'\"<>()\[\]{},:;=]*\d[^\s'\"<>()\[\]{},:;=]*"), "<n>"),
]
# Literals of collections are data too: "[1, 2] != [1, 3]", "{'a': 1}". Innermost first, a few levels deep.
_COLLECTIONS = (re.compile(r"\[[^\[\]\n]*\]"), re.compile(r"\{[^{}\n]*\}"))
# Builtins named in an assertion's explanation say nothing about which code broke.
_BUILTIN_CALLS = frozenset({"len", "str", "int", "float", "list", "dict", "set", "tuple", "sorted", "repr", "type",
                            "isinstance", "sum", "any", "all", "getattr", "hasattr", "bool", "next", "iter", "max",
                            "min", "round", "abs", "format", "open", "callable", "vars", "id", "hash", "frozenset",
                            "reversed", "enumerate", "zip", "map", "filter", "range", "bytes", "ord", "chr"})
_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"<\w+>|[A-Za-z_][\w.]*|==|!=|<=|>=|[^\w\s]")
MAX_MESSAGE = 240  # long assertion diffs add noise, not identity


# pytest's assertion rewriting explains values: "+  where 3.0 = <function total at 0x..>(..)" and
# "+    where <function total ..> = pricing.total". The called names say which code produced the bad value.
_WHERE_CALL = re.compile(r"where [^=\n]*?= (?:<(?:function|bound method|built-in method|method) ([\w.]+)|"
                         r"([A-Za-z_][\w.]*)\(|([A-Za-z_][\w.]*)$)", re.M)


_FAILING_LINE = re.compile(r"^>\s+(.*)$")
_CALL = re.compile(r"(?<![\w.])(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*)\(")
_ASSIGNED_CALL = re.compile(r"^\s+[\w., \[\]]+ = .*\(")
_BLOCK_SEPARATOR = re.compile(r"^(?:_ ){10,}.*$", re.M)
_TEST_LOCATION = re.compile(r"^(?:\S*/)?(?:test_\w*|\w+_test|conftest)\.py:\d+: ", re.M)


def _calls_in(line: str) -> list[str]:
    names = [n for n in _CALL.findall(line.replace(").", ") ")) if n not in _BUILTIN_CALLS
             and not n.startswith(("test", "pytest", "approx", "assert", "fail"))]
    return sorted(dict.fromkeys(names), key=lambda n: n[:1].isupper())  # functions before constructors


def called_by_test(traceback: str) -> list[str]:
    """What the failing test line called (``assert v.bump_major() == w`` -> bump_major), else the call that
    made the value it used (``row = find(x)`` a few lines up): the function under test, where the cause is
    when the test is the only project code on the stack. Builtins and test helpers are left out."""
    if ">" not in traceback:
        return []
    blocks = [b for b in _BLOCK_SEPARATOR.split(traceback[-20_000:]) if _TEST_LOCATION.search(b)]
    if not blocks:
        return []
    lines = blocks[-1].splitlines()
    failing = [i for i, line in enumerate(lines) if _FAILING_LINE.match(line)]
    if not failing:
        return []
    at = failing[-1]
    names = _calls_in(_FAILING_LINE.match(lines[at]).group(1))  # type: ignore[union-attr]
    for line in reversed(lines[max(0, at - 6):at]):
        if names:
            break
        if _ASSIGNED_CALL.match(line):
            names = _calls_in(line.split("=", 1)[1])
    return names[:1]


def _callees(message: str) -> list[str]:
    names = list(dict.fromkeys(a or b or c for a, b, c in _WHERE_CALL.findall(message)))
    return [n for n in names if not any(o != n and o.endswith("." + n) for o in names)
            and n.rsplit(".", 1)[-1] not in _BUILTIN_CALLS and not n.startswith("test")]


def normalise_message(message: str) -> str:
    """Remove numbers, hex addresses, UUIDs, temp paths, timestamps, IPs and ports; keep the first line.

    For pytest assertions the functions named in the "where" explanation are kept as ``(where f, g)``.
    """
    stripped = message.strip()
    text = stripped.split("\n", 1)[0][:4 * MAX_MESSAGE]
    for pattern, placeholder in _VOLATILE:
        text = pattern.sub(placeholder, text)
    if "[" in text or "{" in text:
        for _ in range(3):  # inner literals become one marker, so the outer ones match next time
            text = _COLLECTIONS[0].sub("\x00", _COLLECTIONS[1].sub("\x01", text))
        text = text.replace("\x00", "[…]").replace("\x01", "{…}")
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


def _is_test_frame(frame: Frame) -> bool:
    # A helper function in a Python test file (a fixture, a checker) can be where a cause lies; a test
    # function never is: one cause fails many tests, and their names must not split its cluster.
    if not frame.is_test:
        return False
    return not frame.path.endswith(".py") or not frame.function or frame.function.startswith(("test", "Test"))


TEST_CODE = "test code"  # no project frame but the test's: the failing check is all the stack shows


def crash_point(frames: list[Frame], project_paths: tuple[str, ...] = (), *, test_file: bool = True) -> str:
    """Where the failure happened in project code: ``dir/file.py:function`` of the innermost project frame.

    No line numbers, so an edit above does not split a cluster. When the test is the only project frame
    (its own check failed) ``test code``: such failures join the cluster of the function they called, see
    ``clustering``. With ``test_file=False`` (infrastructure failures) nothing: a refused database is one
    cause whichever test met it.
    """
    project = _project_frames(frames, project_paths)
    inner = [f for f in project if not _is_test_frame(f)]
    if inner:
        f = inner[-1]
        return f"{f.short_path}:{f.function}" if f.function else f.short_path
    return TEST_CODE if project and test_file else ""


# Names too generic to say two failures met in the same function.
_GENERIC = frozenset({"__init__", "__call__", "__getattr__", "__getitem__", "__enter__", "__exit__", "wrapper",
                      "inner", "wrapped", "decorator", "decorated", "module", "main", "run", "call", "get", "set",
                      "genexpr", "listcomp", "dictcomp", "setcomp", "lambda", "setup", "teardown", "helper"})




def meeting_functions(frames: list[Frame], project_paths: tuple[str, ...] = (), callees: Sequence[str] = (),
                      ) -> frozenset[str]:
    """Where a failure meets others with the same cause: the innermost project function on its stack (not
    a test), or, when the test is the only project code (its own check failed), the function its failing
    line called. Bare names: a wrapper and the method it wraps (``_deprecated.compare`` and
    ``Version.compare``) meet.

    Not the callers above the crash, and not what the test called when the failure crashed deeper: those
    are shared by every cause behind them (every test calls ``parse``), so joining on them chained
    independent bugs into one cluster (bench/failure_clusters.py, three bugs per run: purity 0.78 with
    them, 0.96 without; docs/benchmarks.md)."""
    project = [f for f in _project_frames(frames, project_paths) if not _is_test_frame(f) and f.function]
    names = {project[-1].function} if project else set(callees)
    return frozenset(n for n in names if n not in _GENERIC and not n.startswith("<"))


def key_frames(frames: list[Frame], project_paths: tuple[str, ...] = (), *, test_file: bool = True) -> list[str]:
    """The crash point as a list (empty when there is none)."""
    point = crash_point(frames, project_paths, test_file=test_file)
    return [point] if point else []


@dataclass(frozen=True, slots=True)
class Signature:
    """What identifies a failure's cause. ``key`` is exact identity; ``tokens`` feed near-duplicate matching."""

    exception_type: str
    message: str
    frames: tuple[str, ...]
    tokens: frozenset[str]
    meets: frozenset[str] = frozenset()  # functions the failure meets in (see meeting_functions)

    @property
    def text(self) -> str:
        where = " <- ".join(reversed(self.frames))
        if where == TEST_CODE and self.meets:  # the test's own check: which function it was checking
            where += f" calling {', '.join(sorted(self.meets))}"
        return f"{self.exception_type}: {self.message}" + (f" @ {where}" if where else "")

    @property
    def crash_point(self) -> str:
        return self.frames[0] if self.frames else ""

    @property
    def bucket(self) -> tuple[str, str]:
        """Failures only ever cluster within one bucket: the same exception type at the same crash point."""
        return self.exception_type, self.crash_point

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
    callees = called_by_test(record.traceback) or (_callees(record.message) if "where " in record.message else [])
    parsed = parse_frames(record.traceback)
    point = crash_point(parsed, project_paths, test_file=not system)
    frames = (point,) if point else ()
    meets = frozenset() if system else meeting_functions(parsed, project_paths, callees)
    return Signature(exc, message, frames, tokenise(exc, message, frames), meets)

"""Categorising a failure: configured rules in order, then re-run evidence, then the built-in rules."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from testpilot.errors import ConfigError
from testpilot.failures.config import CategoryRule, DefectType, FailuresConfig
from testpilot.failures.evidence import (
    api_drift,
    data_file_error,
    family_of,
    history_flips,
    none_from_lookup,
    where_raised,
)
from testpilot.failures.flaky import decide_flaky
from testpilot.failures.frames import Frame, exception_lines, parse_frames
from testpilot.failures.records import FailureRecord

BUILTIN_DEFECT_TYPES: dict[str, DefectType] = {
    "product_bug": "product", "test_bug": "test", "environment": "system", "timeout": "system",
    "test_data": "test", "dependency": "system", "authentication": "system", "flaky": "test",
    "unclassified": "to_investigate",
}
BUILTIN_HINTS: dict[str, str] = {
    "product_bug": "An assertion or error in product code: start at the innermost project frame and the diff.",
    "test_bug": "The error is in test code or a fixture: fix the test, not the product.",
    "environment": "The environment failed, not the product: check the host and re-run on a fresh one.",
    "timeout": "Something took too long: check the host's load and the service it waited for.",
    "test_data": "Seeding or a data constraint failed: check the dataset, its schema and its isolation.",
    "dependency": "An import or a package version is wrong: check the requirements and the lock file.",
    "authentication": "Credentials were refused: check the environment's secrets, users and their expiry.",
    "flaky": "Passed on re-run: quarantine it or fix the race; see its flip rate.",
    "unclassified": "No rule matched: compare it with its nearest known cluster and add a rule.",
}


@dataclass(frozen=True)
class _Builtin:
    name: str
    types: frozenset[str]
    pattern: re.Pattern[str] | None
    phases: frozenset[str] = field(default_factory=frozenset)


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in parts), re.IGNORECASE)


def _lowered(pattern: str) -> str:
    """A regex that, searched in lower-cased text, matches what ``pattern`` matches case-insensitively.

    Letters are lower-cased except right after a backslash, so ``\\S`` and ``\\D`` keep their meaning.
    """
    out: list[str] = []
    escaped = False
    for ch in pattern:
        out.append(ch if escaped else ch.lower())
        escaped = not escaped and ch == "\\"
    return "".join(out).replace("(?p<", "(?P<").replace("(?p=", "(?P=")


def _lower_rx(*parts: str) -> re.Pattern[str]:
    # Built-in patterns are lower case and searched in lower-cased text: without IGNORECASE the regex
    # engine can use its fast literal scans, which is most of the categorising time over 10,000 failures.
    return re.compile("|".join(f"(?:{p})" for p in parts))


# An HTTP status as a number of its own: not the digits of a timestamp (T=1796224587.401) or a version.
_STATUS = r"(?<![\w.]){}(?![\w]|\.\d)"

# Order matters: "password authentication failed" is also a failed connection, and a seeding
# IntegrityError can come from a fixture; the more specific cause is named first.
_BUILTINS: tuple[_Builtin, ...] = (
    _Builtin("authentication", frozenset({
        "AuthenticationException", "BadAuthenticationType", "PasswordRequiredException", "AuthenticationError",
        "InvalidTokenError", "ExpiredSignatureError", "NotAuthenticated", "AuthError", "Unauthorized"}),
        _lower_rx(_STATUS.format("401"), r"unauthori[sz]ed", _STATUS.format("403"), r"forbidden", r"authentication (?:failed|required)",
            r"password authentication failed", r"access denied for user", r"invalid (?:token|credentials|api.?key"
            r"|password|signature|username or password)", r"(?:token|credentials?|session) (?:has )?expired",
            r"not authenticated", r"permission denied \(publickey", r"bad credentials", r"invalid_grant",
            r"login failed", r"authentication token")),
    _Builtin("test_data", frozenset({
        "IntegrityError", "DataError", "UniqueViolation", "ForeignKeyViolation", "NotNullViolation",
        "CheckViolation", "SeedingError", "DataSeedError"}),
        _lower_rx(r"constraint failed", r"violates (?:unique|foreign key|not-null|check|exclusion) constraint",
            r"duplicate entry", r"duplicate key value", r"foreign key constraint", r"no such table",
            r"relation \S+ does not exist", r"table \S+ doesn't exist", r"cannot be null", r"integrity ?error",
            r"no such column", r"unknown column", r"datatype mismatch"),
        frozenset({"seed"})),
    _Builtin("dependency", frozenset({
        "ImportError", "ModuleNotFoundError", "PackageNotFoundError", "VersionConflict", "DistributionNotFound",
        "ContextualVersionConflict", "ResolutionImpossible", "InvalidRequirement", "RequirementParseError"}),
        _lower_rx(r"no module named", r"cannot import name", r"version conflict", r"requires \S+.* but .*(?:installed|"
            r"you have)", r"incompatible version", r"no package metadata was found", r"distribution was not found",
            r"no matching distribution", r"requires python")),
    _Builtin("timeout", frozenset({
        "TimeoutError", "timeout", "ReadTimeout", "ConnectTimeout", "Timeout", "TimeoutExpired", "ExecutionTimeout",
        "LockTimeout", "ReadTimeoutError", "ConnectTimeoutError", "PoolTimeout", "TimeoutException"}),
        _lower_rx(r"timed? ?out\b", r"\btimeout >\s?\d", r"deadline exceeded", r"took longer than")),
    _Builtin("environment", frozenset({
        "ConnectionRefusedError", "ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError",
        "ConnectionError", "gaierror", "herror", "MemoryError", "SSHException", "NoValidConnectionsError",
        "ChannelException", "ProxyCommandFailure", "InfrastructureError", "ProvisioningError", "StreamAbort",
        "OperationalError", "InterfaceError", "RemoteDisconnected", "NewConnectionError", "NameResolutionError",
        "MaxRetryError", "ProtocolError", "IncompleteRead"}),
        _lower_rx(r"connection refused", r"errno 111\b", r"name or service not known", r"name resolution",
            r"nodename nor servname", r"no address associated", r"failed to resolve", r"getaddrinfo failed",
            r"connection (?:reset|aborted)", r"broken pipe", r"network is unreachable", r"no route to host",
            r"ssh protocol banner", r"ssh session not active", r"socket is closed", r"server closed the connection",
            r"lost connection to", r"can't connect to", r"could not connect", r"connection failed",
            r"cannot allocate memory", r"out of memory", r"\boom\b", r"no space left on device", r"errno 28\b",
            r"disk quota exceeded", r"read-only file system", r"service unavailable", r"\b50[234]\b",
            r"bad gateway", r"max retries exceeded", r"remote end closed", r"too many open files",
            r"provisioning failed"),
        frozenset({"provision", "release", "lock"})),
)

_FIXTURE_MISSING = _lower_rx(r"fixture '[^']+' not found")
_WRONG_CALL = _lower_rx(r"missing \d+ required (?:positional|keyword-only) argument", r"got an unexpected keyword argument",
                        r"takes \d+ positional arguments? but \d+ (?:were|was) given")
_TEST_BUG_TYPES = frozenset({"SyntaxError", "IndentationError", "FixtureLookupError", "UsageError"})
# A name error is the code's own mistake: the test's when raised in test code, the product's in project code.
_LOCATED_TYPES = frozenset({"NameError", "UnboundLocalError"})
FLAKY_FLIPS = 2  # pass/fail changes over recent runs (this failure included) that make a test flaky
# A server answering 500 is the product failing, even when the test's HTTP client raised it.
_SERVER_ERROR = _lower_rx(r"\b500\b[^\n]*server error", r"internal server error")
_TEXT_LIMIT = 4000  # exception text searched by the built-in rules; long assertion diffs add nothing
_ASSERTION_TYPES = frozenset({"AssertionError", "Failed", "AssertionFailedError"})


@dataclass(frozen=True, slots=True)
class Categorisation:
    """The category of one failure, its defect type, which rule said so and what it matched."""

    category: str
    defect_type: DefectType
    rule: str
    evidence: str = ""


@dataclass(frozen=True)
class _Compiled:
    rule: CategoryRule
    pattern: re.Pattern[str] | None
    types: frozenset[str]


class Categoriser:
    """Compiled configured rules plus the built-ins. Build once per run; ``categorise`` is pure."""

    def __init__(self, config: FailuresConfig | None = None) -> None:
        self.config = config or FailuresConfig()
        compiled: list[_Compiled] = []
        for i, rule in enumerate(self.config.categories):
            try:
                _rx(*rule.patterns)  # validate as written, so the error quotes the user's pattern
                pattern = _lower_rx(*map(_lowered, rule.patterns)) if rule.patterns else None
            except re.error as exc:
                raise ConfigError(f"invalid regex in category {rule.name!r}: {exc}",
                                  field=f"failures.categories.{i}.patterns",
                                  hint="fix the pattern; it is a Python regular expression") from None
            compiled.append(_Compiled(rule, pattern, frozenset(rule.exception_types)))
        self._rules = compiled
        # One alternation over every configured pattern: most failures match none, and one scan
        # rejects them without running each rule's search over long tracebacks.
        patterns = [p for r in self.config.categories for p in r.patterns]
        self._any = _lower_rx(*map(_lowered, patterns)) if patterns else None

    def hint(self, category: str) -> str:
        for rule in self.config.categories:
            if rule.name == category and rule.hint:
                return rule.hint
        return self.config.hints.get(category) or BUILTIN_HINTS.get(category, "")

    def categorise(self, record: FailureRecord) -> Categorisation:
        """Configured rules first (in order), then re-run evidence (flaky), then built-in defaults."""
        exc_full = record.exception_type
        exc = exc_full.rsplit(".", 1)[-1]
        lines = exception_lines(record.traceback)
        text = "\n".join([f"{exc_full}: {record.message[:_TEXT_LIMIT]}", *lines])[:_TEXT_LIMIT].lower()
        if self._rules:
            found = self._configured(record, exc_full, exc, lines)
            if found:
                return found
        if decide_flaky("failed", record.rerun_outcomes) == "flaky":
            return Categorisation("flaky", "test", "builtin:flaky", "passed on re-run: "
                                  + ",".join(record.rerun_outcomes))
        if record.history and record.phase in ("test", "setup", "teardown"):
            flips = history_flips(record.history)
            if flips >= FLAKY_FLIPS:
                return Categorisation("flaky", "test", "builtin:flaky", f"flipped {flips} times between pass and "
                                      f"fail over its last {min(len(record.history), 10) + 1} runs")
        return self._builtin(record, exc, text)

    def _configured(self, record: FailureRecord, exc_full: str, exc: str,
                    lines: list[str]) -> Categorisation | None:
        haystack = "\n".join((record.message, record.traceback, record.output, exc_full)).lower()
        any_text = bool(self._any and self._any.search(haystack))
        chained = {line.split(":", 1)[0].rsplit(".", 1)[-1] for line in lines} if lines else set()
        for compiled in self._rules:
            rule = compiled.rule
            evidence = ""
            if compiled.types and (exc in compiled.types or exc_full in compiled.types
                                   or chained & compiled.types):
                evidence = f"exception type {exc_full}"
            elif any_text and compiled.pattern is not None:
                m = compiled.pattern.search(haystack)
                if m:
                    evidence = f"matched {m.group(0)!r}"
            if evidence:
                defect = rule.defect_type or BUILTIN_DEFECT_TYPES.get(rule.name) \
                    or self._builtin(record, exc, "\n".join([record.message, *lines]).lower()).defect_type
                return Categorisation(rule.name, defect, f"config:{rule.name}", evidence)
        return None

    def _builtin(self, record: FailureRecord, exc: str, text: str) -> Categorisation:
        frames = parse_frames(record.traceback)
        where, _ = where_raised(frames)
        project = [f for f in frames if not f.is_library]
        project_inner = project[-1] if project else None
        family = family_of(record.exception_type)
        for b in _BUILTINS:
            if record.phase in b.phases:
                return _make(b.name, f"phase {record.phase}")
            if exc in b.types:
                if b.name == "environment" and exc in {"OperationalError", "InterfaceError", "ConnectionError"} \
                        and not (b.pattern and b.pattern.search(text)):
                    continue  # these wrap many causes; only call them infrastructure with a telling message
                return _make(b.name, f"exception type {exc}")
            if family == b.name:
                return _make(b.name, f"exception type {exc} (a {b.name} error by its name)")
            m = b.pattern.search(text) if b.pattern else None
            if m:
                return _make(b.name, f"matched {m.group(0)!r}")
            if b.name == "test_data":
                found = data_file_error(record, where, project_inner) or none_from_lookup(record)
                if found:
                    return _make("test_data", found)
            elif b.name == "dependency":
                found = api_drift(record, frames, where)
                if found:
                    return _make("dependency", found)
        return _code_category(record, exc, text, frames)


def _make(name: str, evidence: str) -> Categorisation:
    return Categorisation(name, BUILTIN_DEFECT_TYPES[name], f"builtin:{name}", evidence)


def _code_category(record: FailureRecord, exc: str, text: str, all_frames: list[Frame]) -> Categorisation:
    """Product or test bug by where the error is: assertions are the product's, errors in tests are the test's."""
    first = text.split("\n", 1)[0]
    assertion = exc in _ASSERTION_TYPES
    frames = [f for f in all_frames if not f.is_library]
    inner = frames[-1] if frames else None
    in_test = inner is not None and inner.is_test
    if exc in _TEST_BUG_TYPES or (not assertion and _FIXTURE_MISSING.search(first)):
        return _make("test_bug", f"{exc or 'error'} in test code")
    if record.phase in ("setup", "teardown", "collection"):
        return _make("test_bug", f"{exc or 'error'} in {record.phase} (fixture or test module)")
    if assertion:
        return _make("product_bug", "assertion failed")
    if exc in _LOCATED_TYPES or _WRONG_CALL.search(first):
        where = f"{inner.short_path}:{inner.line}" if inner else "unknown code"
        if inner is None or in_test:
            return _make("test_bug", f"{exc} in test code {where}")
        return _make("product_bug", f"{exc} in project code {where}")
    server = _SERVER_ERROR.search(text)
    if server:
        return _make("product_bug", f"the server answered {server.group(0)!r}")
    if inner is None:
        return _make("unclassified", "no project frame in the traceback")
    if not exc and in_test:  # no exception at all: the test's own check failed (Go's t.Errorf, a plain fail)
        return _make("product_bug", f"the test's check failed at {inner.short_path}:{inner.line}")
    if in_test:
        return _make("test_bug", f"{exc} raised in test code {inner.short_path}:{inner.line}")
    return _make("product_bug", f"{exc} raised in project code {inner.short_path}:{inner.line}")

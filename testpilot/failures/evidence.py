"""Evidence the built-in categories read from a failure: where it was raised, exception families, data-file
and lookup errors, library API drift and the test's own history.

Each helper answers one question from the record's text and frames and says what it saw, so a category
always comes with its evidence.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from collections.abc import Sequence
from typing import Literal

from testpilot.failures.frames import Frame
from testpilot.failures.records import FailureRecord
from testpilot.results import Outcome

Where = Literal["test", "project", "library", "stdlib", "unknown"]

_STDLIB = re.compile(r"/lib(?:64)?/python3[\d.]*/(?!site-packages|dist-packages)|<frozen |^<string>")


def where_raised(frames: Sequence[Frame]) -> tuple[Where, Frame | None]:
    """Where the innermost frame is: test code, project code, an installed library or the standard library."""
    if not frames:
        return "unknown", None
    inner = frames[-1]
    if inner.is_library:
        return ("stdlib" if _STDLIB.search(inner.path) else "library"), inner
    return ("test" if inner.is_test else "project"), inner


# Exception families by name: subclasses are usually named after their family (SMTPAuthenticationError,
# PydanticImportError, MissingCredentials), so a pattern on the name finds what an exact list misses.
FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("authentication", re.compile(r"auth(?:entication|ori[sz]ation)?(?:error|exception|failed|failure)|"
                                  r"credential|unauthori[sz]ed|forbidden|accessdenied|permissionerror|"
                                  r"permissiondenied|notauthenticated|invalidtoken|expired(?:signature|token)|(?:token|session)expired|"
                                  r"loginerror|loginfailed|passwordrequired|badauthentication", re.I)),
    ("dependency", re.compile(r"importerror$|modulenotfound|packagenotfound|distributionnotfound|"
                              r"versionconflict|incompatibleversion|unsupportedversion|requirementparse", re.I)),
    ("timeout", re.compile(r"timeout|timedout|deadlineexceeded", re.I)),
    ("test_data", re.compile(r"integrityerror|violation$|noresultfound|multipleresultsfound|doesnotexist|"
                             r"seed(?:ing)?error", re.I)),
)


def family_of(exception_type: str) -> str:
    """The built-in category an exception's name belongs to, or ''."""
    name = exception_type.rsplit(".", 1)[-1]
    for category, pattern in FAMILIES:
        if pattern.search(name):
            return category
    return ""


_PARSE_ERRORS = re.compile(r"(?:JSONDecodeError|ScannerError|ParserError|YAMLError|ComposerError|TOMLDecodeError|"
                           r"ExpatError|XMLSyntaxError|csv\.Error|ParseError|UnicodeDecodeError)$")
_DATA_FILE = re.compile(r"[\w.-]+\.(?:json|jsonl|csv|tsv|ya?ml|toml|xml|ini|txt|sql|parquet)\b|"
                        r"/(?:fixtures?|testdata|test_data|data|samples?)/", re.I)
_NO_FILE = re.compile(r"no such file or directory|file not found|does not exist", re.I)


def data_file_error(record: FailureRecord, where: Where, project_inner: Frame | None) -> str:
    """Evidence that a fixture file is malformed or missing, or ''."""
    exc = record.exception_type
    text = record.message[:2000]
    csv_error = exc.rsplit(".", 1)[-1] == "Error" and "csv" in record.traceback[-3000:].lower()
    if _PARSE_ERRORS.search(exc) or csv_error:
        # A named data file, or a fixture: an inline literal in a test is the test's own mistake.
        named = _DATA_FILE.search(record.traceback[-6000:])
        if named or record.phase == "setup":
            return f"{exc.rsplit('.', 1)[-1]} reading {named.group(0) if named else 'a fixture'}"
    if exc.endswith(("FileNotFoundError", "IsADirectoryError")) or (exc in ("OSError", "IOError")
                                                                    and _NO_FILE.search(text)):
        named = _DATA_FILE.search(text)
        if named:
            return f"missing data file {named.group(0)}"
    return ""


_NONE_FROM_LOOKUP = re.compile(r"'NoneType' object (?:is not subscriptable|has no attribute|is not iterable)|"
                               r"cannot unpack non-iterable NoneType")
# A row lookup: a query API, or a "row" taken from a finder. A None from any function is a product bug.
_LOOKUP_CALL = re.compile(r"\b(?:fetchone|one_or_none|first|scalar|scalar_one_or_none|get_or_none|select_one)\(|"
                          r"\brow\w* = \w*(?:find|lookup|fetch|get|query|select|load)\w*\(")
_SEPARATOR = re.compile(r"^(?:_ ){10,}.*$", re.M)


def none_from_lookup(record: FailureRecord) -> str:
    """Evidence that a lookup found nothing (``None`` used as a row), or ''."""
    if "NoneType" not in record.message[:500] or not _NONE_FROM_LOOKUP.search(record.message[:500]):
        return ""
    blocks = _SEPARATOR.split(record.traceback[-6000:])
    # The innermost frame's source (pytest long format) or the last few lines (native tracebacks).
    inner = blocks[-1] if len(blocks) > 1 else "\n".join(record.traceback.splitlines()[-12:])
    found = _LOOKUP_CALL.search(inner)
    return f"None from a lookup ({found.group(0)}...)" if found else ""


_SIGNATURE_ERROR = re.compile(r"(?:(?P<qual>[\w.]+)\.)?(?P<func>\w+)\(\) (?:got an unexpected keyword argument|"
                              r"missing \d+ required (?:positional|keyword-only) argument|takes \d+ positional "
                              r"arguments? but \d+ (?:were|was) given|got multiple values for argument)")
_MODULE_ATTR = re.compile(r"module '(?P<module>[\w.]+)' has no attribute '(?P<attr>\w+)'")
_VERSION = re.compile(r"__version__|\bversion\b[^\n]{0,60}(?:not supported|unsupported|too old|too new|required|"
                      r"requires|incompatible|expected)|requires? [\w.-]+ ?[<>=~!]=?|minimum version", re.I)
_CALL_LINE = re.compile(r"^(?:>|\s{4})\s*(.*)$")


@functools.lru_cache(maxsize=512)
def is_installed_module(name: str) -> bool:
    """Whether a top-level module is the standard library's or installed here (found, not imported)."""
    if name in sys.stdlib_module_names:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _project_modules(frames: Sequence[Frame]) -> set[str]:
    names: set[str] = set()
    for f in frames:
        if not f.is_library:
            parts = f.path.replace("\\", "/").split("/")
            names.update(p.removesuffix(".py") for p in parts if p)
    return names


def api_drift(record: FailureRecord, frames: Sequence[Frame], where: Where) -> str:
    """Evidence that an installed library's API is not the one the code was written for, or ''."""
    message = record.message[:1000]
    # Cheap substring checks first: this runs for most failures, and the patterns backtrack on long text.
    m = _MODULE_ATTR.search(message) if "has no attribute" in message else None
    if m and m.group("module").split(".")[0] not in _project_modules(frames) \
            and is_installed_module(m.group("module").split(".")[0]):
        return f"module {m.group('module')} has no attribute {m.group('attr')} (removed or renamed API)"
    m = _SIGNATURE_ERROR.search(message) if "argument" in message else None
    if m:
        if where in ("library", "stdlib"):
            return f"{m.group('func')}() in an installed library rejects the call ({where} frame)"
        func = m.group("func")
        if func == "__init__" and m.group("qual"):
            func = m.group("qual").rsplit(".", 1)[-1]
        blocks = _SEPARATOR.split(record.traceback[-6000:])
        inner = blocks[-1] if len(blocks) > 1 else "\n".join(record.traceback.splitlines()[-12:])
        project = _project_modules(frames) | {"self", "cls"}
        # The failing source calls the function on a module that is not the project's: a library call.
        for call in re.finditer(rf"(?<![\w.])([a-z_]\w*)(?:\.\w+)*\.{re.escape(func)}\(", inner):
            if call.group(1) not in project and is_installed_module(call.group(1)):
                return f"{call.group(1)}.{func}() rejects the call: the library's API changed"
    if "version" in message.lower() and _VERSION.search(message) and record.exception_type.rsplit(".", 1)[-1] in (
            "AssertionError", "RuntimeError", "ImportError", "VersionConflict", "Exception", "SystemExit"):
        return "a version check failed"
    return ""


def history_flips(history: Sequence[Outcome], window: int = 10) -> int:
    """Changes between pass and fail over the recent history plus this failure (skips ignored)."""
    runs = ["passed" if o == "passed" else "failed" for o in list(history)[-window:] if o != "skipped"]
    runs.append("failed")
    return sum(1 for a, b in zip(runs, runs[1:], strict=False) if a != b)

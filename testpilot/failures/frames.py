"""Reading stack frames and exception lines out of pytest and plain Python tracebacks.

Hand-written because no maintained library parses pytest's long/short/line report formats as text
(pytest only renders them); the formats are stable and covered by the corpus tests.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

# pytest long/short format: "path.py:42: in func", "path.py:42: ExcType" or "path.py:42: "
_PYTEST_LOC = re.compile(r"^(?P<path>[^\s:][^:\n]*?\.py):(?P<line>\d+):(?: in (?P<func>\S+)| (?P<exc>[A-Za-z_][\w.]*))?\s*$")
_NATIVE_LOC = re.compile(r'^\s*File "(?P<path>[^"]+)", line (?P<line>\d+)(?:, in (?P<func>\S+))?')
_FIXTURE_LOC = re.compile(r"^file (?P<path>\S+\.py), line (?P<line>\d+)\s*$")
_DEF = re.compile(r"^\s*(?:async\s+)?def (\w+)\(")
_SEPARATOR = re.compile(r"^(?:_ ){10,}|^_{10,}")
_E_LINE = re.compile(r"^E\s{1,12}(.*)$")
# A bare exception line of a native traceback: "pkg.mod.SomeError: text" at column 0.
_EXC_LINE = re.compile(r"^(?P<type>(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Timeout|Expired|Failure|"
                       r"Interrupt|Conflict|NotFound|Found|Refused|Denied|Full|Warning|Abort)|Failed|"
                       r"(?:[a-z_]\w*\.)*(?:gaierror|herror|timeout))(?::\s?(?P<msg>.*))?$")

# Java/Kotlin "at pkg.Class.method(File.java:12)", JavaScript "at fn (/path/file.js:4:22)" or "at /path:4:2",
# Go "\t/path/file.go:14 +0x1d" after a "pkg.Func(...)" line, and Go's "    file_test.go:12: message".
_JAVA_LOC = re.compile(r"^\s*at (?:[\w.-]+/)*(?P<cls>[\w$.]+)\.(?P<func>[\w$<>]+)\((?P<file>[\w$]+\.(?:java|kt|scala|groovy))"
                       r"(?::(?P<line>\d+))?\)")
_JS_LOC = re.compile(r"^\s*at (?:(?P<func>[^()]+?) \()?(?P<path>[^()\s]+?\.[cm]?[jt]sx?):(?P<line>\d+):\d+\)?\s*$")
_GO_LOC = re.compile(r"^\t(?P<path>\S+\.go):(?P<line>\d+)(?: \+0x[0-9a-f]+)?$")
_GO_FUNC = re.compile(r"^(?P<func>[\w./-]+\.[\w.()*]+)\(.*\)$")
_GO_TEST_LINE = re.compile(r"^\s{4}(?P<path>\w+_test\.go):(?P<line>\d+): ")

_LIBRARY_MARKERS = ("site-packages", "dist-packages", "/lib/python3", "<frozen", "/usr/lib/", "/.pyenv/",
                    "<string>", "/lib64/python3", "node_modules/", "node:", "/usr/local/go/src/", "/go/pkg/mod/",
                    "<java>/", "<anonymous>")
_JAVA_LIBRARY = ("java.", "javax.", "jdk.", "sun.", "kotlin.", "scala.", "org.junit.", "org.opentest4j.",
                 "org.apache.maven.", "org.assertj.", "org.mockito.", "org.hamcrest.", "junit.", "org.testng.",
                 "org.gradle.", "com.sun.")


@dataclass(frozen=True, slots=True)
class Frame:
    """One stack frame: where it is and whether it is library, test or project code."""

    path: str
    line: int
    function: str = ""
    innermost_first: bool = False  # read from a Java, JavaScript or Go trace, which prints the innermost first

    @property
    def is_library(self) -> bool:
        return any(marker in self.path for marker in _LIBRARY_MARKERS)

    @property
    def is_test(self) -> bool:
        name = self.path.rsplit("/", 1)[-1]
        parts = self.path.replace("\\", "/").split("/")
        return (name.startswith("test_") or name.endswith(("_test.py", "_test.go", "Test.java", "Tests.java",
                                                            "Test.kt", "IT.java"))
                or name == "conftest.py" or ".test." in name or ".spec." in name
                or "tests" in parts[:-1] or "test" in parts[:-1] or "__tests__" in parts[:-1])

    @property
    def short_path(self) -> str:
        """The last two path parts: stable across checkouts, temp dirs and hosts."""
        return "/".join(self.path.replace("\\", "/").split("/")[-2:])


def parse_frames(traceback: str) -> list[Frame]:
    """Frames from outermost to innermost, in the order the traceback prints them."""
    return list(_parse_frames(traceback))


@functools.lru_cache(maxsize=16)  # categorising and signing one failure read the same traceback in turn
def _parse_frames(traceback: str) -> tuple[Frame, ...]:
    frames: list[Frame] = []
    foreign: list[Frame] = []
    block_def = prev = ""
    for line in traceback.splitlines():
        before, prev = prev, line
        # Cheap substring checks first: most lines are source code, and this runs for every failure.
        if line.startswith("_") and _SEPARATOR.match(line):
            block_def = ""
            continue
        if "def " in line and not block_def:
            found = _DEF.match(line)
            if found:
                block_def = found.group(1)
        if ".py" not in line:
            if "at " in line or ".go:" in line:
                other = _foreign_frame(line, before)
                if other is not None:
                    (foreign if other.innermost_first else frames).append(other)
            continue
        m = _PYTEST_LOC.match(line) or _NATIVE_LOC.match(line) or _FIXTURE_LOC.match(line)
        if m is None:
            continue
        func = m.groupdict().get("func") or ""
        if not func and m.re is _PYTEST_LOC:
            func = block_def
        frames.append(Frame(m.group("path"), int(m.group("line")), func.strip("<>") if func else ""))
        block_def = ""
    return tuple(frames + foreign[::-1] if foreign else frames)


def _foreign_frame(line: str, before: str) -> Frame | None:
    """A Java, JavaScript or Go frame. Java and JavaScript print innermost first: the caller reverses them."""
    m = _JAVA_LOC.match(line)
    if m:
        cls = m.group("cls")
        package = cls.rsplit(".", 1)[0].replace(".", "/") if "." in cls else ""
        prefix = "<java>/" if cls.startswith(_JAVA_LIBRARY) else ""
        path = f"{prefix}{package}/{m.group('file')}" if package else prefix + m.group("file")
        return Frame(path, int(m.group("line") or 0), m.group("func"), innermost_first=True)
    m = _JS_LOC.match(line)
    if m:
        func = (m.group("func") or "").rsplit(".", 1)[-1].replace("<anonymous>", "")
        return Frame(m.group("path"), int(m.group("line")), func, innermost_first=True)
    m = _GO_LOC.match(line)
    if m:
        f = _GO_FUNC.match(before)
        func = f.group("func").rsplit("/", 1)[-1].split(".", 1)[-1] if f else ""
        return Frame(m.group("path"), int(m.group("line")), func, innermost_first=True)
    m = _GO_TEST_LINE.match(line)
    if m:
        return Frame(m.group("path"), int(m.group("line")), "")
    return None


def final_exception_type(traceback: str) -> str:
    """The exception type named at the end of a traceback, or ''."""
    for line in reversed(traceback.splitlines()[-60:]):
        m = _PYTEST_LOC.match(line)
        if m and m.group("exc"):
            return m.group("exc")
        e = _E_LINE.match(line)
        text = e.group(1) if e else line
        x = _EXC_LINE.match(text.strip())
        if x and (e or not line.startswith(" ")):
            return x.group("type")
    return ""


def exception_lines(traceback: str, limit: int = 40) -> list[str]:
    """The lines that describe exceptions (pytest ``E`` lines and bare ``Type: message`` lines)."""
    out: list[str] = []
    for line in traceback.splitlines():
        e = _E_LINE.match(line)
        if e:
            out.append(e.group(1))
        elif not line.startswith((" ", "\t")) and _EXC_LINE.match(line):
            out.append(line)
        if len(out) >= limit:
            break
    return out


def split_exception(message: str) -> tuple[str, str]:
    """``("pkg.SomeError", "text")`` from ``"pkg.SomeError: text"``; ``("", message)`` if no type leads."""
    first = message.split("\n", 1)[0].strip()
    m = _EXC_LINE.match(first)
    if m:
        rest = message.strip()[len(m.group("type")):].lstrip(":").strip()
        return m.group("type"), rest
    return "", message.strip()

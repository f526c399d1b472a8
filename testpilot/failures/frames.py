"""Reading stack frames and exception lines out of pytest and plain Python tracebacks.

Hand-written because no maintained library parses pytest's long/short/line report formats as text
(pytest only renders them); the formats are stable and covered by the corpus tests.
"""

from __future__ import annotations

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

_LIBRARY_MARKERS = ("site-packages", "dist-packages", "/lib/python3", "<frozen", "/usr/lib/", "/.pyenv/",
                    "<string>", "/lib64/python3")


@dataclass(frozen=True, slots=True)
class Frame:
    """One stack frame: where it is and whether it is library, test or project code."""

    path: str
    line: int
    function: str = ""

    @property
    def is_library(self) -> bool:
        return any(marker in self.path for marker in _LIBRARY_MARKERS)

    @property
    def is_test(self) -> bool:
        name = self.path.rsplit("/", 1)[-1]
        parts = self.path.replace("\\", "/").split("/")
        return (name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"
                or "tests" in parts[:-1] or "test" in parts[:-1])

    @property
    def short_path(self) -> str:
        """The last two path parts: stable across checkouts, temp dirs and hosts."""
        return "/".join(self.path.replace("\\", "/").split("/")[-2:])


def parse_frames(traceback: str) -> list[Frame]:
    """Frames from outermost to innermost, in the order the traceback prints them."""
    frames: list[Frame] = []
    block_def = ""
    for line in traceback.splitlines():
        # Cheap substring checks first: most lines are source code, and this runs for every failure.
        if line.startswith("_") and _SEPARATOR.match(line):
            block_def = ""
            continue
        if "def " in line and not block_def:
            found = _DEF.match(line)
            if found:
                block_def = found.group(1)
        if ".py" not in line:
            continue
        m = _PYTEST_LOC.match(line) or _NATIVE_LOC.match(line) or _FIXTURE_LOC.match(line)
        if m is None:
            continue
        func = m.groupdict().get("func") or ""
        if not func and m.re is _PYTEST_LOC:
            func = block_def
        frames.append(Frame(m.group("path"), int(m.group("line")), func.strip("<>") if func else ""))
        block_def = ""
    return frames


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

"""Which apps there are, where their tests live, and which files are tests.

With a suite, each app's folder, ``test_paths`` and selection settings come from it. Without one the
repository folder is a single app named ``default`` and its tests are found the way pytest finds them:
``testpaths``, ``python_files``, ``pythonpath`` and ``norecursedirs`` from ``pytest.ini``,
``pyproject.toml`` ``[tool.pytest.ini_options]``, ``tox.ini`` ``[pytest]`` or ``setup.cfg``
``[tool:pytest]``, first found wins, as in pytest.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from testpilot.selection.config import SelectionConfig

if TYPE_CHECKING:
    from testpilot.suite import Suite

DEFAULT_APP = "default"
DEFAULT_PYTHON_FILES = ["test_*.py", "*_test.py"]
DEFAULT_NORECURSE = ["*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}"]

Reader = Callable[[str], bytes | None]  # repo-relative path -> bytes, or None when absent


@dataclass
class PytestConfig:
    source: str = ""
    testpaths: list[str] = field(default_factory=list)
    python_files: list[str] = field(default_factory=lambda: list(DEFAULT_PYTHON_FILES))
    pythonpath: list[str] = field(default_factory=list)
    norecursedirs: list[str] = field(default_factory=lambda: list(DEFAULT_NORECURSE))


@dataclass
class AppSpec:
    """One app as selection sees it; ``dir`` is relative to the repository root ('' for the root)."""

    name: str
    dir: str
    test_paths: list[str]
    pytest: PytestConfig
    config: SelectionConfig
    depends_on: list[str] = field(default_factory=list)

    def rel(self, repo_path: str) -> str | None:
        """``repo_path`` relative to the app folder, or None if it is outside it."""
        if not self.dir:
            return repo_path
        prefix = self.dir + "/"
        return repo_path[len(prefix):] if repo_path.startswith(prefix) else None

    def repo_path(self, rel: str) -> str:
        return f"{self.dir}/{rel}" if self.dir else rel

    def is_test_file(self, rel: str) -> bool:
        """Whether pytest would collect ``rel`` (relative to the app) as a test module."""
        name = rel.rsplit("/", 1)[-1]
        if not name.endswith(".py") or name == "conftest.py":
            return False
        if not _under_any(rel, self.test_paths):
            return False
        folder_re, name_re, path_re = self._patterns
        parts = rel.split("/")[:-1]
        if any(folder_re.match(part) for part in parts):
            return False
        if self._folder_paths and any(fnmatch.fnmatch("/" + "/".join(parts[:i]), pattern)
                                      for pattern in self._folder_paths for i in range(1, len(parts) + 1)):
            return False
        return bool(name_re.match(name) or (path_re and path_re.match(rel)))

    @cached_property
    def _folder_paths(self) -> list[str]:
        # pytest matches a norecursedirs pattern with a "/" against the whole path (fnmatch_ex), else
        # against the folder's name.
        return ["*/" + p.strip("/") for p in self.pytest.norecursedirs if "/" in p.strip("/")]

    @cached_property
    def _patterns(self) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str] | None]:
        # One compiled regex per pattern list: this runs for every file of a large repository.
        def union(patterns: list[str]) -> str:
            return "|".join(f"(?:{fnmatch.translate(p)})" for p in patterns) or "(?!)"

        by_path = [p for p in self.pytest.python_files if "/" in p]
        return (re.compile(union([p for p in self.pytest.norecursedirs if "/" not in p.strip("/")])),
                re.compile(union([p for p in self.pytest.python_files if "/" not in p])),
                re.compile(union(by_path)) if by_path else None)


def _under_any(rel: str, test_paths: list[str]) -> bool:
    for raw in test_paths:
        tp = raw.strip().strip("/")
        if tp in ("", "."):
            return True
        if tp.startswith("./"):
            tp = tp[2:]
        if any(ch in tp for ch in "*?["):
            parts = rel.split("/")
            if any(fnmatch.fnmatchcase("/".join(parts[:i]), tp) for i in range(1, len(parts) + 1)):
                return True
        elif rel == tp or rel.startswith(tp + "/"):
            return True
    return False


def _split(value: str | list[str]) -> list[str]:
    return list(value) if isinstance(value, list) else value.split()


def read_pytest_config(app_dir: str, read: Reader) -> PytestConfig:
    """pytest's settings for the folder ``app_dir`` (repo-relative), in pytest's order of precedence."""
    def path(name: str) -> str:
        return f"{app_dir}/{name}" if app_dir else name

    for name, section in (("pytest.ini", "pytest"), (".pytest.ini", "pytest"),
                          ("pyproject.toml", None), ("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        raw = read(path(name))
        if raw is None:
            continue
        values: dict[str, str | list[str]] | None
        if section is None:
            try:
                data = tomllib.loads(raw.decode("utf-8", "replace"))
            except tomllib.TOMLDecodeError:
                continue
            tool = data.get("tool", {}).get("pytest", {})
            values = tool.get("ini_options") if "ini_options" in tool else (tool or None)
        else:
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read_string(raw.decode("utf-8", "replace"))
            except configparser.Error:
                continue
            if not parser.has_section(section):
                if name.endswith("pytest.ini"):  # pytest.ini wins even without the section
                    return PytestConfig(source=path(name))
                continue
            values = dict(parser.items(section))
        if values is None:
            continue
        config = PytestConfig(source=path(name))
        if "testpaths" in values:
            config.testpaths = _split(values["testpaths"])
        if "python_files" in values:
            config.python_files = _split(values["python_files"])
        if "pythonpath" in values:
            config.pythonpath = _split(values["pythonpath"])
        if "norecursedirs" in values:
            config.norecursedirs = _split(values["norecursedirs"])
        return config
    return PytestConfig()


def app_specs(repo_root: Path, project_dir: Path, suite: Suite | None, read: Reader) -> list[AppSpec]:
    """The apps to select for: the suite's, or one ``default`` app at ``project_dir``."""
    if suite is None:
        rel = _relative(repo_root, project_dir)
        pytest = read_pytest_config(rel, read)
        return [AppSpec(DEFAULT_APP, rel, pytest.testpaths or [""], pytest, SelectionConfig.model_validate({}))]
    specs = []
    for name, app in suite.apps.items():
        rel = _relative(repo_root, suite.app_dir(name))
        sel = suite.selection_for(name)
        pytest = read_pytest_config(rel, read)
        specs.append(AppSpec(name, rel, sel.test_paths or app.test_paths, pytest, sel, list(app.depends_on)))
    return specs


def _relative(root: Path, path: Path) -> str:
    rel = PurePosixPath(path.resolve().relative_to(root).as_posix()).as_posix()
    return "" if rel == "." else rel

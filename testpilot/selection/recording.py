"""``testpilot record``: run a repository's pytest suite once with recording and store the record."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testpilot.errors import TestpilotError
from testpilot.selection import git
from testpilot.selection.record import LocalStore, Part, app_key, normalise

PLUGIN = Path(__file__).resolve().parent.parent / "pytest_plugin.py"
RECORDER = Path(__file__).resolve().parent.parent / "recorder.py"


def stage_plugin(folder: Path) -> Path:
    """Copy the plugin (``testpilot_pytest``) and the recorder (``testpilot_recorder``) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PLUGIN, folder / "testpilot_pytest.py")
    shutil.copy(RECORDER, folder / "testpilot_recorder.py")
    return folder


def implied_python(project: Path) -> str:
    """The interpreter the project's own virtualenv implies (``.venv``, ``venv``), else this one."""
    for name in (".venv", "venv", "env"):
        candidate = project / name / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    return sys.executable


def dirty_paths(root: Path) -> list[str]:
    """Tracked files that differ from HEAD and untracked files: recorded as they are on disk."""
    out = git._git(root, "status", "--porcelain", "-z", "--untracked-files=all").decode()
    paths = []
    for entry in out.split("\0"):
        if len(entry) > 3:
            paths.append(entry[3:])
    return sorted(paths)


def record_env(out: Path, root: Path, plugin_dir: Path, cache: Path, base: dict[str, str] | None = None,
               ) -> dict[str, str]:
    """Variables that make ``pytest -p testpilot_pytest`` record into ``out``."""
    env = dict(os.environ if base is None else base)
    env["TESTPILOT_RECORD_CACHE"] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(plugin_dir), env.get("PYTHONPATH", "")) if p)
    env["TESTPILOT_RECORD"] = str(out)
    env["TESTPILOT_RECORD_ROOT"] = str(root)
    return env


def record_repo(repo: Path, home: Path, *, python: str | None = None, pytest_args: list[str] | None = None,
                echo: bool = True) -> tuple[Path, Part, int]:
    """Run pytest in ``repo`` with recording; store the part for HEAD. Returns (where, part, pytest's code)."""
    project = repo.resolve()
    root = git.repo_root(project)
    commit = git.resolve_ref(root, "HEAD") or ""
    app_dir = project.relative_to(root).as_posix()
    app_dir = "" if app_dir == "." else app_dir
    with tempfile.TemporaryDirectory(prefix="testpilot-record-") as tmp:
        plugin_dir = stage_plugin(Path(tmp) / "plugin")
        out = Path(tmp) / "record.json.gz"
        cmd = [python or implied_python(project), "-m", "pytest", "-p", "testpilot_pytest", *(pytest_args or [])]
        quiet = None if echo else subprocess.DEVNULL
        code = subprocess.run(cmd, cwd=project, env=record_env(out, root, plugin_dir, home / "record-cache"),  # noqa: S603
                              check=False, stdout=quiet, stderr=quiet).returncode
        if not out.exists():
            raise TestpilotError(f"pytest in {project} ended with code {code} before the session finished; "
                                 "nothing was recorded", hint="run the same pytest command by hand and fix what stops it")
        raw = out.read_bytes()
    part = normalise(raw, commit=commit, app="default", name=f"local-{int(time.time() * 1000)}",
                     root_in_repo="", app_dir=app_dir, dirty=dirty_paths(root))
    return LocalStore(home).write(app_key("default", app_dir), part), part, code

"""Session-wide test settings and helpers shared by every test folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ["TESTPILOT_PASS_ENV"] = "MINISUITE_DELAY,MINISUITE_TIMELINE"

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
collect_ignore = ["fixtures"]  # suites the tests copy and run, not tests of ours
pytest_plugins = ["tests.sim.sshd_machines"]  # the `machines` fixture, for the simulator tests
IN_CI = os.environ.get("CI", "").lower() == "true"


def need(condition: bool, what: str) -> None:
    """Skip with a clear message outside CI; fail under CI, where everything must be present."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true but is not available")
    pytest.skip(f"{what} is not available on this machine (CI would fail here)")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                           *args], check=True, capture_output=True, text=True).stdout


def make_repo(tmp: Path, fixture: str = "minisuite") -> Path:
    """A git repository holding a copy of a fixture suite, committed once."""
    repo = tmp / fixture
    shutil.copytree(FIXTURES / fixture, repo)
    return init_repo(repo)


def init_repo(folder: Path, message: str = "initial") -> Path:
    """Make ``folder`` a git repository (branch main) with everything in it committed once."""
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", message)
    return folder


def app_repo(folder: Path) -> Path:
    """The smallest suite repository: one app whose ``code.py`` says ``VALUE = 1``, committed as "one"."""
    (folder / "app").mkdir(parents=True)
    (folder / "testpilot.yaml").write_text("apps: {app: {path: app, test_command: pytest}}\n")
    (folder / "app" / "code.py").write_text("VALUE = 1\n")
    return init_repo(folder, "one")


def commit_change(repo: Path, path: str, old: str, new: str, message: str = "change") -> None:
    file = repo / path
    text = file.read_text()
    assert old in text, f"{old!r} not in {path}"
    file.write_text(text.replace(old, new))
    git(repo, "commit", "-q", "-am", message)


@pytest.fixture(autouse=True, scope="session")
def _testpilot_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("testpilot-home")
    os.environ["TESTPILOT_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def prefect_api() -> str:
    """One Prefect server for the whole session (about 8 s to start), for tests that run flows."""
    from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    # The harness's server is SQLite: under ten concurrent runs it answers 503 (database is locked) for a
    # while. Clients retry 503s; give them more tries (about 4 minutes of backoff instead of 1), here and
    # in the CLI processes tests start, so a busy moment is not a lost API call or a dropped log batch.
    os.environ["PREFECT_CLIENT_MAX_RETRIES"] = "7"
    with temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 7}), prefect_test_harness(server_startup_timeout=120):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url
        yield url
        os.environ.pop("PREFECT_API_URL", None)

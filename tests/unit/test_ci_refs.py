"""`testpilot ci` sends base/head as the commits the caller's clone names, and leaves a junit.xml when
it ends before any run exists."""

import json
import os
import subprocess
import sys
from pathlib import Path

from testpilot.source import caller_commits
from tests.conftest import commit_change, git, make_repo

REPO = Path(__file__).resolve().parents[2]


def _two_clones(tmp_path: Path) -> tuple[Path, Path]:
    """An origin and a clone of it one commit behind: what a CI checkout and a worker's clone look like."""
    origin = make_repo(tmp_path / "origin")
    behind = tmp_path / "worker-clone"
    git(tmp_path, "clone", "-q", str(origin), str(behind))
    commit_change(origin, "apps/alpha/src/alpha/names.py", '"-".join', '"_".join')
    return origin, behind


def test_head_goes_as_the_callers_commit_not_as_a_name_each_worker_resolves(tmp_path):
    origin, behind = _two_clones(tmp_path)
    mine = git(origin, "rev-parse", "HEAD").strip()
    theirs = git(behind, "rev-parse", "HEAD").strip()
    assert mine != theirs
    params, notes = caller_commits({"base": "HEAD~1", "head": "HEAD"}, origin)
    assert params == {"base": theirs, "head": mine}  # the origin's HEAD~1 is the clone's HEAD
    assert any(mine in n for n in notes)
    # an absolute suite path names the clone, whatever folder the command runs in
    params, _ = caller_commits({"head": "HEAD", "suite": str(behind / "testpilot.yaml")}, REPO)
    assert params["head"] == theirs


def test_refs_the_caller_cannot_resolve_go_as_given(tmp_path):
    origin, behind = _two_clones(tmp_path)
    sha = "0" * 40
    params, notes = caller_commits({"base": "no-such-ref", "head": "WORKTREE", "full": True}, origin)
    assert params == {"base": "no-such-ref", "head": "WORKTREE", "full": True}
    assert notes == ["base no-such-ref: not resolved here; the worker resolves it in its own clone"]
    assert caller_commits({"head": sha}, origin)[0] == {"head": sha}
    assert caller_commits({"head": "--upload-pack=touch x"}, origin)[0]["head"] == "--upload-pack=touch x"
    # repo is a URL the current clone is not a clone of: its HEAD means nothing for that repository
    params, _ = caller_commits({"head": "HEAD", "repo": "https://example.invalid/other.git"}, behind)
    assert params["head"] == "HEAD"
    # the same repository, spelled with .git and a trailing slash: resolved
    git(behind, "remote", "set-url", "origin", "https://example.invalid/shop")
    params, _ = caller_commits({"head": "HEAD", "repo": "https://example.invalid/shop.git/"}, behind)
    assert params["head"] == git(behind, "rev-parse", "HEAD").strip()


def test_no_server_still_leaves_an_errored_junit_and_the_json_summary(tmp_path):
    from flows.server import free_port

    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api",
           "TESTPILOT_HOME": str(tmp_path / "home"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "ci", "--json", "--results", str(tmp_path / "r"),
                           "-p", "head=HEAD"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["exit_code"] == 3 and "Prefect API" in summary["message"]
    junit = (tmp_path / "r" / "junit.xml").read_text()
    assert "<error" in junit and "Prefect API" in junit

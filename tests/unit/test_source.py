"""Materialising the head commit: the tested code is the commit asked for, whatever the checkout holds."""

import subprocess
from pathlib import Path

import pytest

from testpilot.errors import ConfigError, GitError
from testpilot.source import prepare_source, resolve_suite_path, run_name
from tests.conftest import app_repo, git, init_repo


def _repo(tmp_path: Path) -> Path:
    repo = app_repo(tmp_path / "repo")
    (repo / "app" / "code.py").write_text("VALUE = 2\n")
    (repo / "testpilot.yaml").write_text("name: two\napps: {app: {path: app, test_command: pytest}}\n")
    git(repo, "commit", "-q", "-am", "two")
    return repo


def _repo_with_submodule(tmp_path: Path, lib: str) -> Path:
    """``_repo`` with a committed submodule at vendor/lib whose lib.py holds ``lib``."""
    sub = tmp_path / "lib"
    sub.mkdir()
    (sub / "lib.py").write_text(lib)
    init_repo(sub, "lib")
    repo = _repo(tmp_path)
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub), "vendor/lib")
    git(repo, "commit", "-q", "-m", "add lib")
    return repo


def test_head_commit_is_materialised_not_the_checkout(tmp_path):
    repo = _repo(tmp_path)
    (repo / "app" / "code.py").write_text("VALUE = 3  # uncommitted\n")
    tree = prepare_source(repo / "testpilot.yaml", "HEAD~1", tmp_path / "tree")
    assert tree.commit == git(repo, "rev-parse", "HEAD~1").strip()
    assert (Path(tree.root) / "app" / "code.py").read_text() == "VALUE = 1\n"
    assert Path(tree.suite).read_text().startswith("apps:")  # the suite file comes from head too
    assert tree.commit in tree.notes[0]
    assert (repo / "app" / "code.py").read_text() == "VALUE = 3  # uncommitted\n"  # checkout untouched
    assert git(repo, "status", "--porcelain").strip() == "M app/code.py"  # index untouched


def test_worktree_head_tests_the_files_on_disk_and_says_so(tmp_path):
    repo = _repo(tmp_path)
    tree = prepare_source(repo / "testpilot.yaml", "WORKTREE", tmp_path / "tree")
    assert tree.worktree and tree.root == str(repo) and not (tmp_path / "tree").exists()
    assert "working tree" in tree.notes[0]


def test_submodules_are_materialised_at_their_recorded_commit(tmp_path):
    repo = _repo_with_submodule(tmp_path, "OLD = True\n")
    (repo / "vendor" / "lib" / "lib.py").write_text("NEW = True\n")  # checkout differs from the recorded commit
    tree = prepare_source(repo / "testpilot.yaml", "HEAD", tmp_path / "tree")
    assert (Path(tree.root) / "vendor" / "lib" / "lib.py").read_text() == "OLD = True\n"


def test_missing_submodule_names_the_path_and_what_to_do(tmp_path):
    repo = _repo_with_submodule(tmp_path, "X = 1\n")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)  # submodule not initialised
    with pytest.raises(GitError, match="submodule vendor/lib") as err:
        prepare_source(clone / "testpilot.yaml", "HEAD", tmp_path / "tree")
    assert "git submodule update --init" in str(err.value)


def test_uncommitted_suite_file_is_used_and_noted(tmp_path):
    repo = _repo(tmp_path)
    (repo / "other.yaml").write_text("apps: {app: {path: app, test_command: pytest}}\n")
    tree = prepare_source(repo / "other.yaml", "HEAD", tmp_path / "tree")
    assert Path(tree.suite).read_text() == (repo / "other.yaml").read_text()
    assert any("not in commit" in n for n in tree.notes)


def test_bad_ref_and_missing_suite_name_what_to_set(tmp_path):
    repo = _repo(tmp_path)
    with pytest.raises(GitError, match="unknown git ref 'nope'"):
        prepare_source(repo / "testpilot.yaml", "nope", tmp_path / "tree")
    path = resolve_suite_path("testpilot.yml", str(repo), Path("/"), field="suite")
    assert path == repo / "testpilot.yml"
    with pytest.raises(ConfigError) as err:
        prepare_source(path, "HEAD", tmp_path / "tree", repo=str(repo), field="suite")
    assert err.value.field == "suite" and "deployment parameter 'suite'" in str(err.value)
    assert "--suite" not in str(err.value)
    with pytest.raises(ConfigError, match="repository folder not found"):
        resolve_suite_path("testpilot.yaml", str(tmp_path / "nowhere"), Path("/"), field="suite")


def test_a_shallow_clone_fetches_its_history_when_a_ref_is_missing(tmp_path):
    repo = _repo(tmp_path)
    git(repo, "commit", "-q", "--allow-empty", "-m", "three")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True)
    tree = prepare_source(clone / "testpilot.yaml", "HEAD~1", tmp_path / "tree", base="HEAD~2")
    assert tree.commit == git(repo, "rev-parse", "HEAD~1").strip()
    assert any("shallow clone" in n for n in tree.notes)
    assert git(clone, "rev-parse", "origin/main").strip() == git(repo, "rev-parse", "HEAD").strip()


def test_a_commit_the_clone_has_not_fetched_yet_is_fetched(tmp_path):
    repo = _repo(tmp_path)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    git(repo, "commit", "-q", "--allow-empty", "-m", "pushed after the clone")
    new = git(repo, "rev-parse", "HEAD").strip()
    tree = prepare_source(clone / "testpilot.yaml", new, tmp_path / "tree", base="origin/main")
    assert tree.commit == new and any("Fetched from origin" in n for n in tree.notes)


def test_run_name_shows_the_resolved_commits(tmp_path):
    repo = _repo(tmp_path)
    one, two = git(repo, "rev-parse", "HEAD~1").strip(), git(repo, "rev-parse", "HEAD").strip()
    assert run_name("testpilot.yaml", str(repo), "HEAD~1", "HEAD") == f"{one[:10]}..{two[:10]} (HEAD~1..HEAD)"
    assert run_name("testpilot.yaml", str(repo), "gone", "HEAD") == f"gone..{two[:10]} (gone..HEAD)"
    assert run_name("testpilot.yaml", str(tmp_path / "nowhere"), "a", "b") == "a..b"


def test_a_broken_suite_at_head_is_named_as_it_is_in_the_commit(tmp_path):
    repo = _repo(tmp_path)
    (repo / "testpilot.yaml").write_text("apps: {app: {path: gone, test_command: pytest}}\n")
    git(repo, "commit", "-q", "-am", "break the suite")
    (repo / "testpilot.yaml").write_text("apps: {app: {path: app, test_command: pytest}}\n")  # fixed on disk only
    sha = git(repo, "rev-parse", "HEAD").strip()
    with pytest.raises(ConfigError) as err:
        prepare_source(repo / "testpilot.yaml", "HEAD", tmp_path / "tree")
    assert str(err.value).startswith(f"testpilot.yaml at {sha[:12]}:1 apps.app.path: folder 'gone' does not exist")

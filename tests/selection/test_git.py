from __future__ import annotations

import pytest

from testpilot.errors import GitError
from testpilot.selection import git

from .helpers import Repo


def test_changed_files_reports_added_modified_deleted_and_renamed(repo: Repo) -> None:
    body = "".join(f"line {i}\n" for i in range(30))
    base = repo.commit({"a.py": "x = 1\n", "b.py": "y = 1\n", "old_name.py": body})
    repo.delete("b.py", "old_name.py")
    head = repo.commit({"a.py": "x = 2\n", "c.py": "z = 1\n", "pkg/new_name.py": body})
    changes = {c.path: c for c in git.changed_files(repo.path, base, head)}
    assert changes["a.py"].status == "M"
    assert changes["b.py"].status == "D"
    assert changes["c.py"].status == "A"
    assert changes["pkg/new_name.py"].status == "R"
    assert changes["pkg/new_name.py"].old_path == "old_name.py"


def test_working_tree_head_includes_unstaged_and_untracked_files(repo: Repo) -> None:
    base = repo.commit({"a.py": "x = 1\n"})
    repo.write({"a.py": "x = 2\n", "new.py": "n = 1\n"})
    changes = {(c.status, c.path) for c in git.changed_files(repo.path, base, None)}
    assert changes == {("M", "a.py"), ("A", "new.py")}


def test_working_tree_base_reverses_the_change(repo: Repo) -> None:
    repo.commit({"a.py": "x = 1\n"})
    head = repo.commit({"b.py": "y = 1\n"})
    repo.git("checkout", "-q", "HEAD~1")
    changes = {(c.status, c.path) for c in git.changed_files(repo.path, None, head)}
    assert changes == {("A", "b.py")}


def test_three_dot_diff_ignores_changes_made_on_base_after_the_fork(repo: Repo) -> None:
    repo.commit({"a.py": "x = 1\n"})
    repo.git("checkout", "-q", "-b", "feature")
    head = repo.commit({"feature.py": "f = 1\n"})
    repo.git("checkout", "-q", "main")
    main = repo.commit({"main_only.py": "m = 1\n"})
    assert [c.path for c in git.changed_files(repo.path, main, head)] == ["feature.py"]


def test_unknown_ref_raises_git_error_naming_ref_and_repo(repo: Repo) -> None:
    repo.commit({"a.py": ""})
    with pytest.raises(GitError) as err:
        git.resolve_ref(repo.path, "no-such-branch")
    assert "no-such-branch" in str(err.value)
    assert str(repo.path) in str(err.value)
    assert "fetch" in err.value.hint


def test_option_like_ref_is_rejected(repo: Repo) -> None:
    repo.commit({"a.py": ""})
    with pytest.raises(GitError, match="invalid git ref"):
        git.resolve_ref(repo.path, "--output=/tmp/x")


def test_not_a_repository(tmp_path) -> None:
    with pytest.raises(GitError, match="not a git repository"):
        git.repo_root(tmp_path)


def test_blob_hashes_match_git_for_commits_and_working_tree(repo: Repo) -> None:
    head = repo.commit({"a.py": "x = 1\n", "d/b.txt": "b"})
    at_commit = git.blob_hashes(repo.path, head)
    assert at_commit["a.py"] == repo.git("rev-parse", f"{head}:a.py")
    repo.write({"a.py": "x = 2\n", "u.py": "u = 1\n"})
    worktree = git.blob_hashes(repo.path, None)
    assert worktree["a.py"] == repo.git("hash-object", "a.py")
    assert worktree["u.py"] == repo.git("hash-object", "u.py")
    assert worktree["d/b.txt"] == at_commit["d/b.txt"]


def test_read_file_and_blobs(repo: Repo) -> None:
    first = repo.commit({"a.py": "x = 1\n"})
    repo.commit({"a.py": "x = 2\n"})
    assert git.read_file(repo.path, first, "a.py") == b"x = 1\n"
    assert git.read_file(repo.path, None, "a.py") == b"x = 2\n"
    assert git.read_file(repo.path, first, "missing.py") is None
    sha = git.blob_hashes(repo.path, first)["a.py"]
    assert git.read_blobs(repo.path, [sha]) == {sha: b"x = 1\n"}


def test_changed_lines_are_old_side_lines(repo: Repo) -> None:
    base = repo.commit({"a.py": "a\nb\nc\nd\n"})
    head = repo.commit({"a.py": "a\nB\nc\nnew\nd\n"})
    assert git.changed_lines(repo.path, base, head, ["a.py"]) == {"a.py": {2, 3, 4}}


def test_select_tests_with_bad_base_raises_git_error(repo: Repo) -> None:
    from testpilot.selection import select_tests

    repo.commit({"a.py": ""})
    with pytest.raises(GitError, match="unknown git ref 'origin/nope'"):
        select_tests(repo.path, "origin/nope", None)

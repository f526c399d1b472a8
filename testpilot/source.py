"""The code under test: the ``head`` commit written out into a run's own folder.

``head`` used to decide only the *selection*; the tests then ran on whatever the worker's checkout
held, so selecting for an old commit while the checkout was newer tested the newer code (a false
green). ``prepare_source`` resolves ``head`` to a commit and writes that commit's tree (and its
submodules' trees) into a folder of the run. The suite file is read from that tree too, so app
paths, requirements, data schemas and test files all come from ``head``.

The tree is written with a throw-away index (``git read-tree`` + ``git checkout-index``) rather
than ``git worktree add``: that neither touches the repository's own index nor registers a worktree
that a killed run would leave behind, and it needs no write access to the repository. Unlike
``git archive`` it honours no ``export-ignore`` attributes, so the tree is the commit, complete.

``head`` = ``WORKTREE`` (or empty) means the working tree: nothing is copied and the files on disk
are tested, which the run's notes say.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

from testpilot.errors import ConfigError, GitError
from testpilot.selection.git import repo_root, resolve_ref
from testpilot.suite import Suite, load_suite

WORKTREE = "WORKTREE"


def is_worktree(ref: str | None) -> bool:
    """Whether a ``head`` value means the working tree rather than a commit."""
    return ref is None or ref.strip() in ("", WORKTREE)


class SourceTree(BaseModel):
    """Where a run's code comes from (plain data; crosses task boundaries)."""

    repo: str = Field(description="Root of the git repository the refs are resolved in.")
    ref: str = Field(description="What ``head`` was given as, e.g. 'HEAD~1' or 'WORKTREE'.")
    commit: str = Field(description="The commit sha tested; '' when the working tree is tested.")
    root: str = Field(description="Folder holding the code under test (the materialised commit, or the repo).")
    suite: str = Field(description="The suite file inside ``root``.")
    notes: list[str] = Field(default_factory=list, description="Lines for the log, the summary and report.json.")

    @property
    def worktree(self) -> bool:
        return not self.commit

    def in_repo(self, suite: Suite) -> Suite:
        """The suite read from this tree, with its paths pointing into the repository (for selection,
        which reads files at ``head`` from git and needs repository-relative paths)."""
        if self.worktree:
            return suite
        moved = suite.model_copy()
        moved._root = Path(self.repo) / Path(self.suite).parent.relative_to(self.root)
        return moved


def resolve_suite_path(suite: str, repo: str | None, cwd: Path, *, field: str = "--suite") -> Path:
    """The suite file a run means: relative paths resolve against ``repo`` when given, else ``cwd``.

    ``field`` names what the user set (the CLI flag, or the deployment parameter ``suite``)."""
    if not suite or not suite.strip():
        raise ConfigError("no suite file given", field=field, hint=_suite_hint(field, repo, cwd))
    base = cwd
    if repo:
        base = Path(repo).expanduser()
        if not base.is_dir():
            raise ConfigError("repository folder not found", file=str(base), field="repo",
                              hint="give the path of a local clone of the repository under test")
    path = Path(suite).expanduser()
    return (path if path.is_absolute() else base / path).resolve()


def _suite_hint(field: str, repo: str | None, cwd: Path) -> str:
    where = f"the repo parameter ({repo})" if repo else f"the working folder ({cwd})"
    if field == "--suite":
        return f"pass --suite PATH; relative paths resolve against {where}"
    return (f"set the deployment parameter {field!r}, e.g. `-p {field}=examples/testpilot.yaml`; relative paths "
            f"resolve against {where}")


def prepare_source(suite_file: Path, head: str | None, dest: Path, *, repo: str | None = None,
                   field: str = "--suite", base: str | None = None) -> SourceTree:
    """Resolve ``head`` and materialise it into ``dest`` (unless it is the working tree).

    Raises ConfigError naming ``field`` when the suite file is neither on disk nor in the commit,
    and GitError naming the ref when ``head`` does not resolve."""
    start = Path(repo).expanduser() if repo else (suite_file.parent if suite_file.parent.is_dir() else Path.cwd())
    root = repo_root(start)
    try:
        rel = suite_file.resolve().relative_to(root).as_posix()
    except ValueError:
        raise ConfigError(f"the suite file is outside the repository {root}", file=str(suite_file), field=field,
                          hint="keep the suite file in the repository, so it is read at the tested commit") from None
    ref = (head or "").strip() or WORKTREE
    if is_worktree(ref):
        if not suite_file.is_file():
            raise ConfigError("suite file not found", file=str(suite_file), field=field,
                              hint=_suite_hint(field, repo, Path.cwd()))
        return SourceTree(repo=str(root), ref=WORKTREE, commit="", root=str(root), suite=str(suite_file),
                          notes=[f"Tested the working tree of {root} (uncommitted changes included), not a commit."])
    fetched = ensure_history(root, [ref, *([base] if base else [])])
    commit = resolve_ref(root, ref) or ""
    in_commit = _has_path(root, commit, rel)
    if not in_commit and not suite_file.is_file():
        raise ConfigError(f"suite file not found, neither on disk nor in commit {commit[:12]}", file=str(suite_file),
                          field=field, hint=_suite_hint(field, repo, Path.cwd()))
    if dest.exists():
        shutil.rmtree(dest)
    materialise(root, commit, dest)
    notes = [f"Tested commit {commit} (head={ref}), written out from {root}; "
             "the files checked out there were not used.",
             *fetched]
    if not in_commit:  # e.g. a suite kept next to, but not committed into, the repository
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(suite_file, target)
        notes.append(f"The suite file {rel} is not in commit {commit[:12]}; used the copy on disk.")
    try:  # errors name the file as it is in the commit, not the run folder (which is gone after the run)
        load_suite(dest / rel)
    except ConfigError as exc:
        raise ConfigError(exc.message, file=f"{rel} at {commit[:12]}", line=exc.line, field=exc.field,
                          hint=exc.hint) from None
    tree = SourceTree(repo=str(root), ref=ref, commit=commit, root=str(dest), suite=str(dest / rel), notes=notes)
    (dest.parent / SOURCE_FILE).write_text(tree.model_dump_json())
    return tree


SOURCE_FILE = "source.json"  # beside a materialised tree (not in it, so it never reaches an environment)


def locate(path: Path) -> tuple[Path, Path, str]:
    """(repository root, the folder that mirrors it, commit) for a path inside a run's materialised tree;
    outside one, the path's own checkout with commit '' (the working tree)."""
    for folder in [path, *path.parents]:
        marker = folder.parent / SOURCE_FILE
        if marker.is_file():
            tree = SourceTree.model_validate_json(marker.read_text())
            if Path(tree.root) == folder:
                return Path(tree.repo), folder, tree.commit
    root = repo_root(path)
    return root, root, ""


def _missing(repo: Path, refs: list[str]) -> list[str]:
    return [r for r in refs if not is_worktree(r) and not r.startswith("-")
            and subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",  # noqa: S603
                                "--end-of-options", f"{r}^{{commit}}"], capture_output=True, check=False).returncode]


def caller_clone(params: dict[str, object], cwd: Path) -> Path | None:
    """The clone of the caller's in which ``base``/``head`` mean what the run will test: ``repo`` when it
    is a folder here, else the folder of an absolute ``suite`` path here, else ``cwd`` (when ``repo`` is a
    URL, only if ``cwd`` is a clone of it)."""
    repo, suite = params.get("repo"), params.get("suite")
    if isinstance(repo, str) and repo and Path(repo).is_dir():
        return Path(repo)
    if isinstance(suite, str) and Path(suite).is_absolute() and Path(suite).exists():
        return Path(suite).parent
    if isinstance(repo, str) and repo:
        origin = subprocess.run(["git", "-C", str(cwd), "remote", "get-url", "origin"],  # noqa: S603
                                capture_output=True, text=True, check=False).stdout.strip()
        return cwd if origin and _same_url(origin, repo) else None
    return cwd


def _same_url(a: str, b: str) -> bool:
    def norm(url: str) -> str:
        return url.strip().rstrip("/").removesuffix(".git").lower()
    return norm(a) == norm(b)


def caller_commits(params: dict[str, object], cwd: Path, keys: tuple[str, ...] = ("base", "head")
                   ) -> tuple[dict[str, object], list[str]]:
    """``base``/``head`` refs resolved to commits in the caller's clone (``caller_clone``), so a deployment
    run tests what the caller means by ``HEAD``, not what each worker's clone means by it. Refs that clone
    does not know (or with no such clone here) go as given and resolve on the worker; notes say which."""
    out, notes = dict(params), []
    clone = caller_clone(params, cwd)
    for key in keys:
        ref = out.get(key)
        if not isinstance(ref, str) or is_worktree(ref) or ref.startswith("-") or re.fullmatch(r"[0-9a-f]{40}", ref):
            continue
        found = subprocess.run(["git", "-C", str(clone), "rev-parse", "--verify", "--quiet",  # noqa: S603
                                "--end-of-options", f"{ref}^{{commit}}"], capture_output=True, text=True,
                               check=False) if clone else None
        if found is not None and found.returncode == 0:
            out[key] = found.stdout.strip()
            notes.append(f"{key} {ref} = {out[key]} (resolved in {clone})")
        else:
            notes.append(f"{key} {ref}: not resolved here; the worker resolves it in its own clone")
    return out, notes


def ensure_history(repo: Path, refs: list[str]) -> list[str]:
    """Fetch from ``origin`` once when a ref is missing from the clone; returns a note saying so.

    A worker's clone lags behind the commits CI asks for, and Prefect's ``git_clone`` pull step
    clones with ``--depth 1`` (``HEAD~1`` and ``origin/main`` are then unknown). A ref still missing
    afterwards is reported by ``resolve_ref``, naming it."""
    missing = _missing(repo, refs)
    if not missing or "origin" not in _git(["-C", str(repo), "remote"]).split():
        return []
    shallow = _git(["-C", str(repo), "rev-parse", "--is-shallow-repository"]).strip() == "true"
    _git(["-C", str(repo), "fetch", "--quiet", *(["--unshallow"] if shallow else []), "--tags", "origin",
          "+refs/heads/*:refs/remotes/origin/*"])
    for ref in _missing(repo, missing):  # a commit on no branch (a pull request's head): ask for it by name
        subprocess.run(["git", "-C", str(repo), "fetch", "--quiet", "origin", "--end-of-options", ref],  # noqa: S603
                       capture_output=True, check=False)
    return [f"Fetched from origin into {repo}{' (it was a shallow clone)' if shallow else ''} "
            f"to resolve {', '.join(missing)}."]


def materialise(repo: Path, commit: str, dest: Path) -> None:
    """Write the tree of ``commit`` into ``dest``, and each submodule's recorded commit into its folder."""
    _materialise(Path(_git(["-C", str(repo), "rev-parse", "--absolute-git-dir"]).strip()), repo, commit, dest)


def _materialise(git_dir: Path, work: Path, commit: str, dest: Path) -> None:
    _write_tree(git_dir, commit, dest)
    for path, sha in _gitlinks(git_dir, commit):
        sub = _submodule_git_dir(work, git_dir, commit, path)
        if sub is None or subprocess.run(["git", "--git-dir", str(sub), "cat-file", "-e",  # noqa: S603
                                          f"{sha}^{{commit}}"], capture_output=True, check=False).returncode:
            raise GitError(f"submodule {path} at {sha[:12]} (recorded in {commit[:12]}) is not available locally",
                           file=str(work), field="head",
                           hint="run `git submodule update --init --recursive` in the clone "
                                "(or clone with include_submodules: true)")
        _materialise(sub, work / path, sha, dest / path)


def _write_tree(git_dir: Path, commit: str, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="testpilot-index-") as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        base = ["--git-dir", str(git_dir), "--work-tree", str(dest)]
        _git([*base, "read-tree", commit], env=env)
        _git([*base, "checkout-index", "--all", "--force"], env=env)


def _gitlinks(git_dir: Path, commit: str) -> list[tuple[str, str]]:
    """(path, commit) of every submodule recorded in ``commit``."""
    out = []
    for item in _git(["--git-dir", str(git_dir), "ls-tree", "-r", "-z", commit]).split("\0"):
        meta, _, path = item.partition("\t")
        if meta.startswith("160000 "):
            out.append((path, meta.split()[2]))
    return out


def _submodule_git_dir(work: Path, git_dir: Path, commit: str, path: str) -> Path | None:
    """A submodule's repository: its checked-out folder, or ``.git/modules/<name>``."""
    checked_out = work / path
    if (checked_out / ".git").exists():
        return Path(_git(["-C", str(checked_out), "rev-parse", "--absolute-git-dir"]).strip())
    name = path
    proc = subprocess.run(["git", "--git-dir", str(git_dir), "config", "--blob", f"{commit}:.gitmodules",  # noqa: S603
                           "--get-regexp", r"^submodule\..*\.path$"], capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        key, _, value = line.partition(" ")
        if value == path:
            name = key[len("submodule."):-len(".path")]
    candidate = git_dir / "modules" / name
    return candidate if candidate.is_dir() else None


def _has_path(repo: Path, commit: str, rel: str) -> bool:
    return subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{commit}:{rel}"],  # noqa: S603
                          capture_output=True, check=False).returncode == 0


def _git(args: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True, env=env, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise GitError(f"git {next(a for a in args if not a.startswith('-') and '/' not in a)} failed: "
                       f"{proc.stderr.strip()}", hint="check the repository and the ref")
    return proc.stdout


def describe(tree: SourceTree) -> str:
    """One line for the CLI and the summary: which code was tested."""
    if tree.worktree:
        return f"head=WORKTREE: the working tree of {tree.repo}"
    return f"head={tree.ref} = {tree.commit}"


def run_name(suite: str, repo: str | None, base: str, head: str) -> str:
    """A flow run name showing the resolved commits, e.g. ``1a2b3c4d5e..9f8e7d6c5b (main..HEAD)``.

    Best effort: a ref that does not resolve (yet: a shallow clone is fetched later) keeps its name."""
    label = f"{base}..{head or WORKTREE}"
    try:
        path = resolve_suite_path(suite, repo, Path.cwd())
        root = repo_root(Path(repo) if repo else (path.parent if path.parent.is_dir() else Path.cwd()))
    except (ConfigError, OSError):
        return label

    def sha(ref: str) -> str:
        if is_worktree(ref):
            return WORKTREE
        try:
            return (resolve_ref(root, ref) or "")[:10]
        except ConfigError:
            return ref

    return f"{sha(base)}..{sha(head)} ({label})"

"""Read what changed between two revisions, and file contents and blob hashes at a revision.

``None`` as a revision means the working tree (tracked files plus untracked, not ignored ones).
Every git call is an argv list; refs never reach a shell.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from testpilot.errors import GitError

WORKTREE = None


@dataclass(frozen=True)
class FileChange:
    """One changed path, relative to the repository root. ``status`` is A, M, D or R (renamed)."""

    status: str
    path: str
    old_path: str = ""


def _git(repo: Path, *args: str, input: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], input=input,  # noqa: S603 - argv list
                              capture_output=True, check=False)
    except FileNotFoundError:
        raise GitError("git is not installed", hint="install git and make sure it is on PATH") from None
    if proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}",
                       file=str(repo), hint="check that the folder is a git repository")
    return proc.stdout


def repo_root(path: Path) -> Path:
    """The top folder of the git repository containing ``path``; GitError if there is none."""
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "--show-toplevel"],  # noqa: S603
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GitError("not a git repository", file=str(path),
                       hint="run selection inside a git checkout, or `git init` and commit first")
    return Path(proc.stdout.strip()).resolve()


def resolve_ref(repo: Path, ref: str | None) -> str | None:
    """The commit sha ``ref`` names, or None for the working tree. GitError names the bad ref."""
    if ref is None:
        return None
    if ref.startswith("-"):
        raise GitError(f"invalid git ref {ref!r}", file=str(repo), field="ref",
                       hint="pass a branch, tag or commit, not an option")
    proc = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",  # noqa: S603
                           "--end-of-options", f"{ref}^{{commit}}"], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise GitError(f"unknown git ref {ref!r} in {repo}", file=str(repo), field="ref",
                       hint="fetch it first (e.g. `git fetch origin main`) or check the spelling; "
                            "shallow CI clones need fetch-depth 0")
    return proc.stdout.strip()


def merge_base(repo: Path, base: str, head: str | None) -> str:
    """Where ``head`` (or HEAD, for the working tree) forked from ``base``: the ``base...head`` point."""
    other = head or "HEAD"
    proc = subprocess.run(["git", "-C", str(repo), "merge-base", base, other],  # noqa: S603
                          capture_output=True, text=True, check=False)
    # Unrelated histories have no merge base; comparing with base itself is then the safe choice.
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else base


def changed_files(repo: Path, base: str | None, head: str | None) -> list[FileChange]:
    """Files that differ between ``base`` and ``head`` (``git diff -M base...head``), renames detected.

    Either side may be None (the working tree); untracked files count as added.
    """
    if base is None and head is None:
        return []
    if base is None:  # working tree -> commit: the reverse of commit -> working tree
        assert head is not None
        flip = {"A": "D", "D": "A"}
        return [FileChange("R", c.old_path, c.path) if c.status == "R"
                else FileChange(flip.get(c.status, c.status), c.path) for c in _diff(repo, head, None)]
    return _diff(repo, merge_base(repo, base, head), head)


def _diff(repo: Path, start: str, head: str | None) -> list[FileChange]:
    args = ["diff", "--name-status", "-z", "-M", "--no-ext-diff", start, *([head] if head else []), "--"]
    changes = _parse_name_status(_git(repo, *args))
    if head is None:
        untracked = _git(repo, "ls-files", "-z", "--others", "--exclude-standard").split(b"\0")
        changes += [FileChange("A", p.decode("utf-8", "surrogateescape")) for p in untracked if p]
    return changes


def _parse_name_status(raw: bytes) -> list[FileChange]:
    parts = raw.decode("utf-8", "surrogateescape").split("\0")
    out: list[FileChange] = []
    i = 0
    while i < len(parts) and parts[i]:
        status = parts[i][0]
        if status in "RC":
            old, new = parts[i + 1], parts[i + 2]
            out.append(FileChange("R", new, old) if status == "R" else FileChange("A", new))
            i += 3
        else:
            out.append(FileChange("M" if status == "T" else status, parts[i + 1]))
            i += 2
    return out


def blob_hashes(repo: Path, rev: str | None) -> dict[str, str]:
    """Path -> git blob sha for every file at ``rev`` (working tree: tracked and untracked files)."""
    out: dict[str, str] = {}
    if rev is not None:
        raw = _git(repo, "ls-tree", "-r", "-z", "--full-tree", rev)
        for item in raw.split(b"\0"):
            if item:
                meta, _, path = item.partition(b"\t")
                mode, kind, sha = meta.split()
                if kind == b"blob":
                    out[path.decode("utf-8", "surrogateescape")] = sha.decode()
        return out
    out = {}
    for item in _git(repo, "ls-files", "-s", "-z").split(b"\0"):
        if item:
            meta, _, path = item.partition(b"\t")
            out[path.decode("utf-8", "surrogateescape")] = meta.split()[1].decode()
    dirty = _git(repo, "diff", "--name-only", "-z").split(b"\0")
    untracked = _git(repo, "ls-files", "-z", "--others", "--exclude-standard").split(b"\0")
    for raw_path in dirty + untracked:
        if raw_path:
            name = raw_path.decode("utf-8", "surrogateescape")
            file = repo / name
            if file.is_file():
                out[name] = hash_blob(file.read_bytes())
            else:
                out.pop(name, None)
    return out


def hash_blob(data: bytes) -> str:
    """The sha git gives a blob with these bytes (so working-tree files share the cache)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def read_blobs(repo: Path, shas: list[str]) -> dict[str, bytes]:
    """Contents of many blobs in one ``git cat-file --batch`` call."""
    if not shas:
        return {}
    raw = _git(repo, "cat-file", "--batch", input="\n".join(shas).encode() + b"\n")
    out: dict[str, bytes] = {}
    pos = 0
    for sha in shas:
        header_end = raw.index(b"\n", pos)
        header = raw[pos:header_end].split()
        if len(header) < 3:  # "<sha> missing"
            pos = header_end + 1
            continue
        size = int(header[2])
        out[sha] = raw[header_end + 1:header_end + 1 + size]
        pos = header_end + 1 + size + 1
    return out


def read_file(repo: Path, rev: str | None, path: str) -> bytes | None:
    """A file's bytes at ``rev`` (None: the working tree), or None if it does not exist there."""
    if rev is None:
        file = repo / path
        return file.read_bytes() if file.is_file() else None
    proc = subprocess.run(["git", "-C", str(repo), "cat-file", "blob", f"{rev}:{path}"],  # noqa: S603
                          capture_output=True, check=False)
    return proc.stdout if proc.returncode == 0 else None


_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@", re.M)


def changed_lines(repo: Path, base: str, head: str | None, paths: list[str]) -> dict[str, set[int]]:
    """Old-side line numbers each path's change touches. A pure insertion touches the lines around it."""
    if not paths:
        return {}
    start = merge_base(repo, base, head)
    raw = _git(repo, "diff", "-U0", "--no-ext-diff", "--no-renames", start, *([head] if head else []),
               "--", *paths)
    out: dict[str, set[int]] = {}
    current: set[int] | None = None
    for line in raw.split(b"\n"):
        if line.startswith(b"--- "):
            continue
        if line.startswith(b"+++ "):
            name = line[4:].decode("utf-8", "surrogateescape")
            current = out.setdefault(name[2:] if name.startswith("b/") else name, set())
            continue
        match = _HUNK.match(line)
        if match and current is not None:
            first, count = int(match.group(1)), int(match.group(2) or 1)
            current.update(range(first, first + count) if count else (first, first + 1))
    return out


def grep_files(repo: Path, rev: str | None, needles: list[str]) -> list[str]:
    """Paths of files at ``rev`` (None: the working tree) containing any of ``needles`` literally."""
    if not needles:
        return []
    args = ["grep", "-l", "-z", "-F", "-I"]
    for needle in needles:
        args += ["-e", needle]
    args += [rev, "--"] if rev else ["--untracked", "--"]
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)  # noqa: S603
    if proc.returncode not in (0, 1):  # 1 = no match
        raise GitError(f"git grep failed: {proc.stderr.decode(errors='replace').strip()}", file=str(repo))
    out = []
    for item in proc.stdout.split(b"\0"):
        if item:
            path = item.decode("utf-8", "surrogateescape")
            out.append(path.split(":", 1)[1] if rev and path.startswith(rev + ":") else path)
    return out

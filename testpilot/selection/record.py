"""Per-test dependency records: their stored layout, merging, and the nearest recorded ancestor.

A recording session (``testpilot record``, or one pipeline shard) writes one *part*:
``records/<app key>/<commit>/<part name>.json.gz`` under a storage base (gzipped JSON, paths relative
to the repository root, node ids relative to the app folder). Parts are never rewritten, so shards
running at once never race; reading merges them (merge on read): the newest part that ran a test wins,
and tests a commit's parts did not run keep their record from older recorded commits (up to
``MAX_CHAIN`` of them). Each test keeps the part it came from, so its functions are compared with the
code it really ran.

The CLI reads and writes the default location (``$TESTPILOT_HOME/records``) directly, without importing
Prefect; the pipeline writes the same layout through a Prefect storage block and points to each part
with an artifact (``tasks/records.py``).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from testpilot.selection import git

FORMAT = 1
MAX_CHAIN = 5
ROOT_FOLDER = "records"


@dataclass
class Part:
    """One recording session, normalised: paths are repository-relative, node ids app-relative."""

    commit: str
    app: str
    name: str
    created: float
    keys: list[str]
    units: dict[str, dict[str, str]]  # path -> qualname -> fingerprint, for every instrumented module
    uninstrumented: list[str]
    session: dict[str, list[int]]  # units/opened/listed/spawned outside any test (imports, collection)
    tests: dict[str, dict[str, list[int]]]
    dirty: list[str] = field(default_factory=list)  # files that differed from the commit when recorded

    def to_bytes(self) -> bytes:
        data = {"format": FORMAT, **self.__dict__}
        return gzip.compress(json.dumps(data, separators=(",", ":")).encode(), 5)

    @classmethod
    def from_bytes(cls, raw: bytes) -> Part:
        data = json.loads(gzip.decompress(raw))
        data.pop("format", None)
        return cls(**data)


@dataclass
class Record:
    """Every test's newest recorded dependencies; ``owner[node]`` indexes ``parts``."""

    app: str
    parts: list[Part]
    owner: dict[str, int]

    @property
    def commit(self) -> str:
        return self.parts[0].commit if self.parts else ""

    def deps(self, node: str, kind: str) -> list[str]:
        part = self.parts[self.owner[node]]
        return [part.keys[i] for i in part.tests[node].get(kind, ())]


def app_key(app: str, app_dir: str) -> str:
    """Storage folder name: the app's name (zero-config: ``default`` plus its folder, if not the root)."""
    raw = app if not app_dir or app != "default" else f"{app}-{app_dir}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip("-") or "default"


def normalise(raw: bytes, *, commit: str, app: str, name: str, root_in_repo: str, app_dir: str,
              dirty: Iterable[str] = ()) -> Part:
    """Turn the plugin's output (paths relative to where it ran) into a stored part."""
    data = json.loads(gzip.decompress(raw))
    prefix = f"{root_in_repo}/" if root_in_repo else ""
    rootdir = os.path.relpath(data["rootdir"], data["root"]).replace(os.sep, "/")
    rootdir = "" if rootdir == "." else rootdir + "/"
    app_prefix = f"{app_dir}/" if app_dir else ""

    def repo_path(rel: str) -> str:
        return prefix + rel

    def node_id(node: str) -> str:
        full = prefix + rootdir + node
        return full[len(app_prefix):] if full.startswith(app_prefix) else full

    # Keys name functions and files (repository paths), or processes and hosts (kept as they are).
    plain = {i for deps in [data["session"], *data["tests"].values()] for kind in ("spawned", "connected")
             for i in deps.get(kind, ())}
    keys = [k if i in plain else repo_path(k) for i, k in enumerate(data["keys"])]
    return Part(commit=commit, app=app, name=name, created=time.time(), keys=keys,
                units={repo_path(p): fps for p, fps in data["units"].items()},
                uninstrumented=[repo_path(p) for p in data["uninstrumented"]], session=data["session"],
                tests={node_id(n): deps for n, deps in data["tests"].items()}, dirty=sorted(dirty))


def merge(app: str, parts_newest_first: list[Part]) -> Record:
    owner: dict[str, int] = {}
    for index, part in enumerate(parts_newest_first):
        for node in part.tests:
            owner.setdefault(node, index)
    return Record(app, parts_newest_first, owner)


def nearest(repo: Path, rev: str | None, recorded: Iterable[str], limit: int = 2000) -> list[str]:
    """Recorded commits that are ancestors of ``rev`` (or HEAD), nearest first."""
    have = set(recorded)
    if not have:
        return []
    sha = git.resolve_ref(repo, rev or "HEAD")  # a bad ref: GitError naming it (and never an option)
    out = git._git(repo, "rev-list", f"--max-count={limit}", str(sha)).decode().split()
    return [sha for sha in out if sha in have]


class LocalStore:
    """The default storage location, read and written directly (what a LocalFileSystem block at
    ``$TESTPILOT_HOME`` holds)."""

    def __init__(self, base: Path) -> None:
        self.base = Path(base)

    def folder(self, key: str) -> Path:
        return self.base / ROOT_FOLDER / key

    def commits(self, key: str) -> list[str]:
        folder = self.folder(key)
        return [p.name for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []

    def parts(self, key: str, commit: str) -> list[Part]:
        files = sorted((self.folder(key) / commit).glob("*.json.gz"))
        parts = [Part.from_bytes(f.read_bytes()) for f in files]
        return sorted(parts, key=lambda p: p.created, reverse=True)

    def write(self, key: str, part: Part) -> Path:
        path = self.folder(key) / part.commit / f"{part.name}.json.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(part.to_bytes())
        os.replace(tmp, path)
        return path


def load_record(repo: Path, rev: str | None, app: str, commits: list[str],
                read_parts: Callable[[str], list[Part]]) -> Record | None:
    """The merged record for ``app`` at the nearest recorded ancestor of ``rev``."""
    chain = nearest(repo, rev, commits)[:MAX_CHAIN]
    parts: list[Part] = []
    for commit in chain:
        parts += read_parts(commit)
    return merge(app, parts) if parts else None


def load_local(repo: Path, rev: str | None, app: str, app_dir: str, home: Path) -> Record | None:
    store = LocalStore(home)
    key = app_key(app, app_dir)
    return load_record(repo, rev, app, store.commits(key), lambda c: store.parts(key, c))

"""Per-test records through a Prefect storage block, found again through pointer artifacts.

Each shard's recording is one part (``testpilot/selection/record.py``), written with the storage block
named by ``TESTPILOT_RECORD_STORAGE`` (``<block-type-slug>/<block-name>``, e.g. ``remote-file-system/records``
for workers on several machines) or, by default, a ``LocalFileSystem`` at ``$TESTPILOT_HOME`` (the same
folder ``testpilot record``/``select`` use directly). A keyed artifact per app points to each part:
the run history says which commits have records, and no second database does.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from prefect.filesystems import LocalFileSystem

from testpilot.selection import git
from testpilot.selection.record import ROOT_FOLDER, Part, Record, app_key, load_record, normalise
from testpilot.selection.recording import dirty_paths
from testpilot.settings import get_settings
from testpilot.source import locate
from testpilot.suite import Suite

STORAGE_ENV = "TESTPILOT_RECORD_STORAGE"


def storage() -> Any:
    """The configured storage block, else a LocalFileSystem at $TESTPILOT_HOME."""
    name = os.environ.get(STORAGE_ENV, "")
    if name:
        from prefect.blocks.core import Block

        return Block.load(name)
    return LocalFileSystem(basepath=str(get_settings().home))


def pointer_key(suite: Suite, app: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"testpilot-record-{suite.name}-{app}".lower()).strip("-")


def store_part(suite: Suite, app: str, raw: bytes, name: str) -> str:
    """Normalise a shard's recording, write it through the block and point to it; returns its path."""
    repo, mirror, commit = locate(suite.root.resolve())  # a run's materialised tree mirrors its commit
    app_dir = suite.app_dir(app).resolve().relative_to(mirror).as_posix()
    app_dir = "" if app_dir == "." else app_dir
    dirty = [] if commit else dirty_paths(repo)
    commit = commit or git.resolve_ref(repo, "HEAD") or ""
    part = normalise(raw, commit=commit, app=app, name=name, root_in_repo=app_dir, app_dir=app_dir,
                     dirty=dirty)
    path = f"{ROOT_FOLDER}/{app_key(app, app_dir)}/{commit}/{name}.json.gz"
    storage().write_path(path, part.to_bytes())
    pointer = {"commit": commit, "app": app, "path": path, "tests": len(part.tests),
               "storage": os.environ.get(STORAGE_ENV, "") or "local-file-system (TESTPILOT_HOME)"}
    create_markdown_artifact(f"Per-test record of **{app}** at `{commit[:12]}`: {len(part.tests)} tests, "
                             f"`{path}`\n\n```json\n{json.dumps(pointer)}\n```", key=pointer_key(suite, app),
                             description=json.dumps(pointer))
    return path


def load_records(suite: Suite, base: str, limit: int = 200) -> dict[str, Record]:
    """Each app's merged record at the nearest recorded ancestor of ``base``."""
    root = git.repo_root(suite.root)
    block = storage()
    out: dict[str, Record] = {}
    with get_client(sync_client=True) as client:
        for app in suite.apps:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[pointer_key(suite, app)])),
                sort=ArtifactSort.CREATED_DESC, limit=limit)
            paths: dict[str, list[str]] = {}
            for artifact in found:
                try:
                    pointer = json.loads(artifact.description or "")
                except ValueError:
                    continue
                paths.setdefault(pointer["commit"], []).append(pointer["path"])

            def parts(commit: str, paths: dict[str, list[str]] = paths) -> list[Part]:
                got = []
                for path in paths[commit]:
                    try:
                        got.append(Part.from_bytes(block.read_path(path)))
                    except (OSError, ValueError, TypeError):
                        continue  # a part that was removed from storage: the others still count
                return sorted(got, key=lambda p: p.created, reverse=True)

            record = load_record(root, base, app, list(paths), parts)
            if record is not None:
                out[app] = record
    return out


def keep_record(runner: Any, remote_path: str, scratch: Path, suite: Suite, app: str, shard: int,
                logger: Any) -> str | None:
    """Fetch and store the shard's recording. Recording never fails a shard: problems are warnings."""
    from prefect.runtime import flow_run

    dirty = runner.dirty
    try:
        local = runner.fetch(remote_path, scratch)
        runner.dirty = dirty  # a missing record file says nothing about the environment
        if not local.is_file():
            logger.warning("%s[%d]: the test command wrote no per-test record", app, shard)
            return None
        path = store_part(suite, app, local.read_bytes(), f"{flow_run.id or 'local'}-{shard}")
        logger.info("%s[%d]: per-test record stored at %s", app, shard, path)
        return path
    except Exception as exc:  # noqa: BLE001 - the record is an optimisation for the next run
        runner.dirty = dirty
        logger.warning("%s[%d]: per-test record not stored: %s", app, shard, exc)
        return None

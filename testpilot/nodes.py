"""Graph nodes as flow runs on a work pool: what crosses the Prefect API, and the worker's own clone.

With ``execution: work-pool`` the pipeline runs each graph node (one app shard) as a flow run of the
node deployment. Nothing is shared on disk: the request names the repository to clone and the commit
to test, the node writes that commit out from its worker's own clone (under its own
``TESTPILOT_HOME``), and its ``ShardResult`` comes back as an artifact with the key ``testpilot-shard``.
This module is the plain part: the request and result models, their (de)serialisation, and the clone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from testpilot.environments.base import Environment
from testpilot.errors import ConfigError, GitError
from testpilot.results import ShardResult

SHARD_KEY = "testpilot-shard"
_FENCE = re.compile(r"```json\n(.*?)\n```", re.DOTALL)


class NodeRequest(BaseModel):
    """One graph node for a node flow run (the deployment's only parameter, as JSON)."""

    repo: str = Field(description="Where the worker clones from: the pipeline clone's origin URL (or its path).")
    commit: str = Field(description="The commit under test (the pipeline's resolved head).")
    suite: str = Field(description="The suite file, relative to the repository root.")
    node: str
    app: str
    shard: int
    tests: list[str]
    pool: str = Field(description="The app's environment pool.")
    slot: int = Field(0, description="The pool member the pipeline holds; a local node builds its own copy of it.")
    env: Environment | None = Field(None, description="A remote environment to use as is; None: build it locally.")
    run_id: str = Field("", description="The pipeline's flow run id.")


class WorkerInfo(BaseModel):
    """Which worker ran a node (hostname-independent markers: its home and clone)."""

    host: str = ""
    pid: int = 0
    home: str = ""
    clone: str = ""


class NodeResult(BaseModel):
    """What a node flow run publishes: its shard's results and where it ran."""

    shard: ShardResult
    worker: WorkerInfo = Field(default_factory=WorkerInfo)
    attempt_run: str = Field("", description="The node flow run id.")


def node_parameters(request: NodeRequest) -> dict[str, Any]:
    """The node deployment's parameters for ``request`` (plain JSON)."""
    return {"request": request.model_dump(mode="json")}


def parse_request(request: dict[str, Any] | NodeRequest) -> NodeRequest:
    return request if isinstance(request, NodeRequest) else NodeRequest.model_validate(request)


def result_markdown(result: NodeResult) -> str:
    """The ``testpilot-shard`` artifact: a readable line, then the result as a JSON block."""
    s = result.shard
    failed = len(s.failures)
    head = (f"**{s.app}[{s.shard}]**: {len(s.results)} result(s), {failed} failed, on {result.worker.host} "
            f"(home `{result.worker.home}`)")
    return f"{head}\n\n```json\n{result.model_dump_json()}\n```\n"


def result_from_markdown(text: str) -> NodeResult:
    """Read back what ``result_markdown`` wrote. Raises ValueError when it holds no result."""
    found = _FENCE.search(text or "")
    if not found:
        raise ValueError("the artifact holds no JSON result block")
    return NodeResult.model_validate(json.loads(found.group(1)))


def worker_info(home: Path, clone: Path) -> WorkerInfo:
    return WorkerInfo(host=socket.gethostname(), pid=os.getpid(), home=str(home), clone=str(clone))


def origin_of(repo: Path) -> str:
    """Where a worker should clone ``repo`` from: its ``origin`` remote, else the folder itself
    (which only works for workers on the same machine)."""
    proc = subprocess.run(["git", "-C", str(repo), "remote", "get-url", "origin"],  # noqa: S603
                          capture_output=True, text=True, check=False)
    url = proc.stdout.strip() if proc.returncode == 0 else ""
    if url and not re.match(r"^[a-z][a-z0-9+.-]*://|^[^/]+@[^/]+:", url) and not Path(url).is_absolute():
        url = str((repo / url).resolve())  # a relative path remote: make it usable from elsewhere
    return url or str(repo)


def clone_folder(clones: Path, url: str) -> Path:
    """The worker's own clone of ``url``, under ``clones`` (one folder per URL)."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")).strip("-")
    return clones / f"{name or 'repo'}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


@contextmanager
def clone_lock(folder: Path) -> Iterator[None]:
    """Serialise clone, fetch and checkout of one clone between the node runs of one worker."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_clone(url: str, clones: Path) -> Path:
    """Clone ``url`` into the worker's clones folder unless it is there (call under ``clone_lock``)."""
    if not url:
        raise ConfigError("the node request names no repository", field="request.repo",
                          hint="the pipeline passes its clone's origin URL; give that clone an origin remote")
    folder = clone_folder(clones, url)
    if (folder / ".git").exists():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    subprocess.run(["rm", "-rf", "--", str(partial)], check=False)  # noqa: S603,S607
    proc = subprocess.run(["git", "clone", "--quiet", "--no-checkout", "--", url, str(partial)],  # noqa: S603,S607
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise GitError(f"cannot clone {url}: {proc.stderr.strip()}", field="request.repo",
                       hint="the worker needs read access to the repository (a git credentials block, "
                            "a deploy key, or a reachable path)")
    partial.rename(folder)
    return folder

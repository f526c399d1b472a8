"""The local provider: environments on this machine.

Each environment is a fresh working directory holding a copy of every app's code, its own
databases, and a Python virtual environment per app that is reused while the app's requirement
set is unchanged (keyed by a hash of the requirements file). Slots of a pool are claimed with
``flock`` on a per-slot file: the kernel drops the claim if the process dies, so a killed run can
never leave a slot claimed. The pool's Prefect concurrency limit decides *how many* runs may
hold a slot; the flock only decides *which* slot a run gets.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from testpilot.environments.base import AcquireRequest, Environment, Health, database_variable
from testpilot.environments.databases import create_database, drop_databases_quietly
from testpilot.errors import ProvisioningError

PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "pytest_plugin.py"
_IGNORE = shutil.ignore_patterns(".git", "__pycache__", ".venv", ".pytest_cache", "*.pyc")


def _requirements_hash(path: Path | None) -> str:
    data = path.read_bytes() if path and path.exists() else b""
    return hashlib.sha256(data + sys.version.encode()).hexdigest()[:16]


class LocalProvider:
    """Environments as folders on this machine. ``home`` holds envs/, venvs/ and slot locks."""

    name = "local"

    def __init__(self, home: Path, *, postgres_url: str | None = None, mysql_url: str | None = None,
                 uv: str | None = None) -> None:
        self.home = Path(home)
        self.postgres_url, self.mysql_url = postgres_url, mysql_url
        self.uv = uv or _find_uv()
        self._claims: dict[str, IO[str]] = {}

    # -- Provider protocol ---------------------------------------------------------------------
    def acquire(self, request: AcquireRequest) -> Environment:
        slot, claim = self._claim_slot(request.pool, request.config.pool_size)
        env = self._environment(request, slot, request.run_id)
        self._claims[env.id] = claim
        self._reset_or_release(env, request)
        return env

    def replica(self, request: AcquireRequest, tag: str) -> Environment:
        """Build this machine's own copy of member ``request.slot`` of the pool, for one node run (``tag``).

        No slot is claimed here: the pipeline holds the member's lock. Nodes of one worker may build
        copies of the same member at once, so the venv cache is filled under a file lock."""
        env = self._environment(request, request.slot, tag)
        (self.home / "venvs").mkdir(parents=True, exist_ok=True)
        with open(self.home / "venvs" / f".{env.id}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._reset_or_release(env, request)
        return env

    def _reset_or_release(self, env: Environment, request: AcquireRequest) -> None:
        """Prepare ``env``; one that fails half way (or is interrupted) is handed back, not left behind."""
        try:
            self._reset(env, request)
        except BaseException:
            self.release(env)
            raise

    def _environment(self, request: AcquireRequest, slot: int, run: str) -> Environment:
        """Member ``slot`` of the pool, in a fresh folder for ``run`` (a run id, or a node run's tag)."""
        env_id = f"{request.pool}-{slot}"
        workdir = self.home / "envs" / f"{env_id}-{run.replace('-', '')[:12]}"
        return Environment(id=env_id, pool=request.pool, provider=self.name, slot=slot, workdir=str(workdir),
                           labels={"testpilot-run": run, "testpilot-pool": request.pool,
                                   "testpilot-expires": str(int(time.time() + request.expires_in))})

    def release(self, env: Environment) -> None:
        drop_databases_quietly(env.databases.values())
        shutil.rmtree(env.workdir, ignore_errors=True)
        if env.dirty:  # an abort pattern or a lost run: rebuild its venvs too before anyone reuses the slot
            shutil.rmtree(self.home / "venvs" / env.id, ignore_errors=True)
        claim = self._claims.pop(env.id, None)
        if claim:
            claim.close()

    def destroy(self, env: Environment) -> None:
        self.release(env)
        shutil.rmtree(self.home / "venvs" / env.id, ignore_errors=True)

    def health(self, env: Environment) -> Health:
        workdir = Path(env.workdir)
        if not workdir.is_dir():
            return Health(ok=False, detail=f"working directory {workdir} is missing")
        for app, python in env.python.items():
            if not Path(python).exists():
                return Health(ok=False, detail=f"interpreter for {app} is missing: {python}")
        return Health(ok=True, detail=f"{len(env.python)} app interpreters ready in {workdir}")

    # -- internals -----------------------------------------------------------------------------
    def _claim_slot(self, pool: str, size: int) -> tuple[int, IO[str]]:
        lock_dir = self.home / "slots" / pool
        lock_dir.mkdir(parents=True, exist_ok=True)
        for slot in range(size):
            handle = open(lock_dir / f"{slot}.lock", "w")  # noqa: SIM115 - held until release
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            handle.write(str(os.getpid()))
            handle.flush()
            return slot, handle
        raise ProvisioningError(f"all {size} local environments of pool {pool!r} are in use",
                                host="localhost", phase="provision",
                                hint="runs outside Prefect's pool lock are holding slots; wait or raise pool_size")

    def _reset(self, env: Environment, request: AcquireRequest) -> None:
        workdir = Path(env.workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        plugin_dir = workdir / ".testpilot"
        plugin_dir.mkdir()
        if PLUGIN_SOURCE.exists():
            shutil.copy(PLUGIN_SOURCE, plugin_dir / "testpilot_pytest.py")
            shutil.copy(PLUGIN_SOURCE.with_name("recorder.py"), plugin_dir / "testpilot_recorder.py")
        for app, source in request.apps.items():
            shutil.copytree(source, workdir / app, ignore=_IGNORE, symlinks=True)
            requirements = request.requirements.get(app)
            env.python[app] = self._venv(env.id, app, Path(requirements) if requirements else None)
        for name, service in request.config.services.items():
            env.databases[name] = create_database(name, service, env_id=env.id.replace("-", "_"),
                                                  run_id=request.run_id, workdir=workdir,
                                                  postgres_url=self.postgres_url, mysql_url=self.mysql_url)
        env.env.update({
            "TESTPILOT_ENV_ID": env.id, "TESTPILOT_RUN_ID": request.run_id, "TESTPILOT_WORKDIR": str(workdir),
            "PYTHONPATH": str(plugin_dir),
        })
        for name, url in env.databases.items():
            env.env[database_variable(name)] = url
        if len(env.databases) == 1:
            env.env["DATABASE_URL"] = next(iter(env.databases.values()))

    def _venv(self, env_id: str, app: str, requirements: Path | None) -> str:
        """Return the app's interpreter, building its venv only when the requirements changed."""
        digest = _requirements_hash(requirements)
        root = self.home / "venvs" / env_id
        venv = root / f"{app}-{digest}"
        python = venv / "bin" / "python"
        if (venv / ".complete").exists():
            return str(python)
        for stale in root.glob(f"{app}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        steps = [[self.uv, "venv", "--quiet", "--python", sys.executable, str(venv)]]
        if requirements and requirements.exists():
            steps.append([self.uv, "pip", "install", "--quiet", "--python", str(python), "-r", str(requirements)])
        for argv in steps:
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise ProvisioningError(f"cannot build the virtual environment for {app}: {' | '.join(detail)}",
                                        host="localhost", phase="install",
                                        hint=f"check {requirements or 'the requirements file'}")
        (venv / ".complete").write_text(digest)
        return str(python)


def _find_uv() -> str:
    try:
        from uv import find_uv_bin  # the uv wheel ships its binary; a project dependency

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise ProvisioningError("uv is not installed", host="localhost", phase="install",
                                    hint="install the project with its dependencies (uv sync)") from None
        return found


def leftover_workdirs(home: Path) -> list[Path]:
    """Environment folders still on disk (the demo and tests assert this is empty after a run)."""
    envs = Path(home) / "envs"
    return sorted(p for p in envs.iterdir() if p.is_dir()) if envs.exists() else []


def cleanup_run(home: Path, run_id: str, servers: list[str]) -> list[str]:
    """Remove every folder and database a run left behind (crash and cancel hooks, reaper)."""
    from testpilot.environments.databases import gc_databases

    short = run_id.replace("-", "")[:12]
    removed = []
    for folder in leftover_workdirs(home):
        if folder.name.endswith(f"-{short}"):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(str(folder))
    for server in servers:
        removed += gc_databases(server, lambda owner: owner.replace("-", "") == run_id.replace("-", ""))
    return removed

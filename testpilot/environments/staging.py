"""Staging a remote environment: copy the apps over SFTP, build a venv per app, create databases.

``StagedProvider`` wraps a remote provider (SSH machines, Proxmox VE, Hetzner Cloud) so that every
environment it hands out is ready to run tests, exactly like a local one:

- ``<workdir>/<app>/``: the app's source, uploaded over SFTP;
- ``<workdir>/.testpilot/testpilot_pytest.py``: the pytest plugin that records phases and output;
- ``<workdir>/.venvs/<app>/``: a virtualenv with the app's requirements, made on the host with ``uv``
  when the pool names one (fast, cached) or ``python3 -m venv`` + pip otherwise;
- one database per service: PostgreSQL/MySQL on the configured server (reachable from the host), or a
  SQLite file that is seeded on the worker and uploaded by :func:`publish_sqlite`.

Provisioning and installing are two steps (``provision`` then ``stage``) so that a flow can show them
as two phases; ``acquire`` does both. A stage that fails hands the environment back marked dirty, so
the provider resets it before anyone gets it again, and removes the databases it made.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import make_url

from testpilot.environments.base import AcquireRequest, Environment, Health, Provider, database_variable
from testpilot.environments.databases import create_database, drop_databases_quietly
from testpilot.environments.ssh import safe_name
from testpilot.errors import ConfigError, ProvisioningError
from testpilot.execution.remote import OnLine, RemoteHost

PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "pytest_plugin.py"
RECORDER_SOURCE = PLUGIN_SOURCE.with_name("recorder.py")  # the plugin's per-test recording


class InstallSettings(BaseModel):
    """How apps are installed on a remote environment (the pool's ``settings.install``)."""

    model_config = ConfigDict(extra="forbid")
    python: str = Field("python3", description="Interpreter on the host that venvs are made from.")
    uv: str | None = Field(None, description="Path of uv on the host; when set, venvs are made and filled with uv.")
    env: dict[str, str] = Field(default_factory=dict,
                                description="Extra variables for the install commands, e.g. PIP_INDEX_URL or "
                                            "UV_CACHE_DIR. Not secrets: they are shown in logs.")
    timeout: float = Field(900, gt=0, description="Seconds one install command may take.")


Connect = Callable[[Environment], RemoteHost]


def default_connect(inner: Provider) -> Connect:
    """SSH machines know their own secrets (from their Blocks); VMs and servers use the pool's key file."""
    remote = getattr(inner, "remote", None)
    if callable(remote):
        return remote

    def connect(env: Environment) -> RemoteHost:
        if env.ssh is None:
            raise ConfigError(f"environment {env.id} has no SSH access", field="transport",
                              hint="only remote providers can be staged")
        return RemoteHost.from_access(env.ssh)

    return connect


class StagedProvider:
    """A remote provider whose environments come with the apps installed (see the module docstring)."""

    def __init__(self, inner: Provider, *, connect: Connect | None = None, install: InstallSettings | None = None,
                 postgres_url: str | None = None, mysql_url: str | None = None, scratch: Path | None = None,
                 on_line: OnLine | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.connect = connect or default_connect(inner)
        self.install = install or InstallSettings()
        self.postgres_url, self.mysql_url = postgres_url, mysql_url
        self.scratch = scratch or Path.home() / ".cache" / "testpilot" / "remote-sqlite"
        self.on_line = on_line

    # -- Provider protocol --------------------------------------------------------------------------------
    def acquire(self, request: AcquireRequest) -> Environment:
        return self.stage(self.provision(request), request)

    def release(self, env: Environment) -> None:
        try:
            self._drop_databases(env)
        finally:
            self.inner.release(_as_provided(env))

    def destroy(self, env: Environment) -> None:
        try:
            self._drop_databases(env)
        finally:
            self.inner.destroy(_as_provided(env))

    def health(self, env: Environment) -> Health:
        return self.inner.health(env)

    # -- the two phases ------------------------------------------------------------------------------------
    def provision(self, request: AcquireRequest) -> Environment:
        """The inner provider's acquire: an environment reset to baseline (or to its warm snapshot of these
        requirements, when the provider keeps them) and health-checked."""
        env = self.inner.acquire(request.model_copy(update={"warm_key": self.warm_key(request)}))
        health = self.inner.health(env)
        if not health.ok:
            self.inner.release(env.model_copy(update={"dirty": True}))
            raise ProvisioningError(f"environment {env.id} on {env.host} is not healthy after reset: {health.detail}",
                                    host=env.host, phase="provision", dirty=True,
                                    hint="the provider resets it before its next use; check the host if it repeats")
        return env

    def stage(self, env: Environment, request: AcquireRequest, on_line: OnLine | None = None) -> Environment:
        """Upload the apps, install them and create the databases; on failure hand the env back dirty.

        ``on_line`` receives the install commands' output (default: the provider's ``on_line``)."""
        provided = env
        env = env.model_copy(deep=True)
        sink = on_line or self.on_line
        try:
            with self._remote(env) as remote:
                workdir = self._workdir(remote, env)
                env.metadata["provided_workdir"] = env.workdir
                env.workdir = workdir
                tools = posixpath.join(workdir, ".testpilot")
                self._must(remote, ["mkdir", "-p", "--", tools], env, "prepare the working folder")
                remote.upload_file(PLUGIN_SOURCE, posixpath.join(tools, "testpilot_pytest.py"))
                remote.upload_file(RECORDER_SOURCE, posixpath.join(tools, "testpilot_recorder.py"))
                key = self.warm_key(request)
                warm = bool(key) and env.metadata.get("warm_key") == key  # reset to a snapshot with these venvs
                if warm:  # the snapshot holds the sources of the commit it was taken at: replace them
                    self._must(remote, ["rm", "-rf", "--", *(posixpath.join(workdir, a) for a in request.apps)],
                               env, "remove the sources of the warm snapshot")
                for app, source in request.apps.items():
                    target = posixpath.join(workdir, app)
                    remote.upload_dir(source, target)
                    env.python[app] = self._venv(remote, env, app, target, request.requirements.get(app), source,
                                                 None if warm else sink, installed=warm, compile_all=bool(key))
            self._keep_warm(provided, key, warm, sink)  # with no session of ours open in the snapshot
            local_dir = self.scratch / f"{safe_name(env.id)}-{safe_name(request.run_id)}"
            for name, service in request.config.services.items():
                local_dir.mkdir(parents=True, exist_ok=True)
                env.databases[name] = create_database(
                    name, service, env_id=env.id.replace("-", "_"), run_id=request.run_id, workdir=local_dir,
                    postgres_url=self.postgres_url, mysql_url=self.mysql_url)
        except BaseException as exc:
            self._drop_databases(env)
            try:
                self.inner.release(provided.model_copy(update={"dirty": True}))
            except Exception as again:  # noqa: BLE001 - the first error is the one to report
                exc.add_note(f"handing {env.id} back also failed: {again}")
            raise
        env.labels.update({"testpilot-run": request.run_id, "testpilot-pool": request.pool})
        env.env.update({"TESTPILOT_ENV_ID": env.id, "TESTPILOT_RUN_ID": request.run_id,
                        "TESTPILOT_WORKDIR": env.workdir, "PYTHONPATH": posixpath.join(env.workdir, ".testpilot")})
        for name, url in env.databases.items():
            env.env[database_variable(name)] = url
        if len(env.databases) == 1:
            env.env["DATABASE_URL"] = next(iter(env.databases.values()))
        return env

    # -- internals ----------------------------------------------------------------------------------------
    @contextmanager
    def _remote(self, env: Environment) -> Iterator[RemoteHost]:
        remote = self.connect(env)
        try:
            yield remote.connect()
        finally:
            remote.close()

    def _must(self, remote: RemoteHost, argv: list[str], env: Environment, what: str,
              extra_env: dict[str, str] | None = None, on_line: OnLine | None = None) -> str:
        result = remote.run(argv, phase="install", timeout=self.install.timeout, env=extra_env, on_line=on_line)
        if not result.ok:
            why = "timed out" if result.timed_out else f"exited with {result.exit_code}"
            raise ProvisioningError(f"cannot {what} on {env.host}: `{argv[0]}` {why}: {result.tail[-800:]}",
                                    host=env.host, phase="install", dirty=True,
                                    hint="run the command by hand on the host to see why; "
                                         "the pool's settings.install chooses python, uv and the index")
        return result.tail

    def _workdir(self, remote: RemoteHost, env: Environment) -> str:
        if posixpath.isabs(env.workdir):
            return env.workdir
        home = self._must(remote, ["pwd"], env, "find the home folder").strip().splitlines()[-1]
        return posixpath.normpath(posixpath.join(home, env.workdir))

    def warm_key(self, request: AcquireRequest) -> str:
        """The fingerprint of what ``request``'s venvs hold, for providers that keep warm snapshots
        (Proxmox); '' when the provider keeps none or a requirements file installs local files."""
        if not getattr(self.inner, "keeps_warm_snapshots", False):
            return ""
        return requirements_fingerprint(request.requirements, self.install)

    def _keep_warm(self, env: Environment, key: str, warm: bool, sink: OnLine | None) -> None:
        """After a fresh install: have the provider snapshot the member, so the next reset skips it."""
        say = sink or (lambda _stream, _line: None)
        if warm:
            say("stdout", f"{env.id}: reset to its warm snapshot of these requirements ({key}): install skipped")
            return
        if not key:
            return
        try:
            name = self.inner.save_warm(env, key)  # type: ignore[attr-defined]
        except ProvisioningError as exc:  # the run goes on; only the next install is not skipped
            say("stderr", f"{env.id}: could not save the warm snapshot, the next run installs again: {exc}")
            return
        if name:
            say("stdout", f"{env.id}: installed apps saved as snapshot {name}; later runs with the same "
                          "requirements reset to it and skip the install")

    def _venv(self, remote: RemoteHost, env: Environment, app: str, target: str, requirements: str | None,
              source: str, on_line: OnLine | None, *, installed: bool = False, compile_all: bool = False) -> str:
        """The app's venv: built (``compile_all``: with bytecode for everything, as a warm snapshot keeps
        it for many runs), or as it is (``installed``: the warm snapshot holds it)."""
        venv = posixpath.join(env.workdir, ".venvs", safe_name(app))
        python = posixpath.join(venv, "bin", "python")
        if installed:
            return python
        remote_req = None
        if requirements:
            relative = Path(requirements).resolve().relative_to(Path(source).resolve()).as_posix()
            remote_req = posixpath.join(target, relative)
        s = self.install
        if s.uv:
            steps = [[s.uv, "venv", "--quiet", "--python", s.python, venv]]
            if remote_req:
                steps.append([s.uv, "pip", "install", "--quiet", *(["--compile-bytecode"] if compile_all else []),
                              "--python", python, "-r", remote_req])
        else:
            steps = [[s.python, "-m", "venv", venv]]
            if remote_req:
                steps.append([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "-r", remote_req])
        for step in steps:
            self._must(remote, step, env, f"install {app}", extra_env=s.env, on_line=on_line)
        return python

    def _drop_databases(self, env: Environment) -> None:
        drop_databases_quietly(env.databases.values())
        if env.databases:
            shutil.rmtree(self.scratch / f"{safe_name(env.id)}-{safe_name(env.labels.get('testpilot-run', ''))}", ignore_errors=True)


LOCAL_REQUIREMENT = re.compile(r"^(-e|--editable)\b|^(\.|/|~)|file:|^[\w.-]+\s*@\s*(\.|/)"
                               r"|^(-f|--find-links)[\s=]+(\.|/|~)")
INCLUDE = re.compile(r"^(-r|--requirement|-c|--constraint)[\s=]+(\S+)")


def requirements_fingerprint(requirements: dict[str, str | None], install: InstallSettings) -> str:
    """16 hex digits over the install settings and every app's requirements (with the files they
    include through -r/-c), or '' when a requirement is a local path or an editable install: such a
    venv holds the app's own files, which change with every commit."""
    digest = hashlib.sha256(f"warm 1\n{install.model_dump_json()}\n".encode())
    for app in sorted(requirements):
        digest.update(f"\0{app}\n".encode())
        path = requirements[app]
        if path and not _hash_requirements(Path(path), digest, depth=0):
            return ""
    return digest.hexdigest()[:16]


def _hash_requirements(path: Path, digest: Any, depth: int) -> bool:
    if depth > 5 or not path.is_file():
        return depth == 0 and not path.exists()  # a missing top-level file installs nothing
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if LOCAL_REQUIREMENT.search(line):
            return False
        digest.update(line.encode() + b"\n")
        included = INCLUDE.match(line)
        if included and not _hash_requirements(path.parent / included.group(2), digest, depth + 1):
            return False
    return True


def _as_provided(env: Environment) -> Environment:
    """The environment as the inner provider handed it out (its own workdir, which it checks on release)."""
    provided = env.metadata.get("provided_workdir")
    return env.model_copy(update={"workdir": provided}) if provided else env


def local_sqlite(env: Environment) -> dict[str, Path]:
    """The app variables that still point at a SQLite file on the worker, and those files."""
    target = posixpath.join(env.workdir, ".testpilot", "db")
    found = {}
    for name, value in env.env.items():
        if (name.startswith("TESTPILOT_DB_") or name == "DATABASE_URL") and value.startswith("sqlite") \
                and not value.startswith(f"sqlite:///{target}"):
            local = Path(make_url(value).database or "")
            if local.is_file():
                found[name] = local
    return found


def publish_sqlite(env: Environment, remote: RemoteHost) -> Environment:
    """Upload the run's seeded SQLite files to the host and point the app's variables at the copies."""
    env = env.model_copy(deep=True)
    target = posixpath.join(env.workdir, ".testpilot", "db")
    for name, local in local_sqlite(env).items():
        remote.upload_file(local, posixpath.join(target, local.name))
        url = make_url(env.env[name]).set(database=posixpath.join(target, local.name))
        env.env[name] = url.render_as_string(hide_password=False)
    return env

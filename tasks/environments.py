"""Provision and tear down environments. Providers are built here from settings and blocks.

A local pool is a ``LocalProvider``. A remote pool (ssh, proxmox, hetzner) is the provider its
Blocks describe, wrapped in a ``StagedProvider`` so apps are uploaded and installed on the host:
``provision`` (reset to baseline, health check) and ``install`` are separate task runs, so each
phase shows in the Prefect UI with its own logs and duration.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import cast

from prefect import get_run_logger, task

from tasks.common import TASK_DEFAULTS, suite_at
from tasks.test_data import drop_data
from testpilot.environments.base import AcquireRequest, Environment, Provider
from testpilot.environments.config import EnvironmentConfig
from testpilot.environments.local import LocalProvider
from testpilot.environments.servers import plan_servers, wanted_blocks
from testpilot.environments.staging import InstallSettings, StagedProvider
from testpilot.errors import ConfigError, TestpilotError
from testpilot.execution.local import kill_all_running
from testpilot.execution.remote import RemoteHost, fence_hosts
from testpilot.settings import get_settings

logger = logging.getLogger("testpilot.teardown")
_providers: dict[tuple[str, str], Provider] = {}
_providers_lock = threading.Lock()


def get_provider(pool: str, config: EnvironmentConfig) -> Provider:
    """One provider object per pool (and settings) and process, so claims made at acquire are released later."""
    key = (pool, json.dumps(config.model_dump(mode="json"), sort_keys=True))
    with _providers_lock:
        if key not in _providers:
            _providers[key] = _build(pool, config)
        return _providers[key]


def _build(pool: str, config: EnvironmentConfig) -> Provider:
    settings = get_settings()
    if config.provider == "local":
        return LocalProvider(settings.home, postgres_url=settings.postgres_url, mysql_url=settings.mysql_url)
    from blocks.environments import provider_from_blocks

    spec = dict(config.settings)
    try:
        install = InstallSettings.model_validate(spec.pop("install", {}))
    except ValueError as exc:
        raise ConfigError(f"bad install settings: {exc}", field=f"environments.{pool}.settings.install",
                          hint="keys: python, uv, env, timeout") from None
    inner = provider_from_blocks(config.provider, spec, pool=pool, pool_size=config.pool_size)
    if hasattr(inner, "stage_apps"):
        inner.stage_apps = False  # the StagedProvider uploads and installs, the same way for every provider
    return StagedProvider(inner, install=install, postgres_url=settings.postgres_url,
                          mysql_url=settings.mysql_url, scratch=settings.home / "remote-sqlite")


def connection(suite_path: str, env: Environment) -> RemoteHost:
    """A RemoteHost for an environment a remote pool handed out."""
    provider = get_provider(env.pool, suite_at(suite_path).environments[env.pool])
    if not isinstance(provider, StagedProvider):
        raise ConfigError(f"environment {env.id} of pool {env.pool!r} is not remote", field="transport")
    remote = provider.connect(env)
    remote.owner = env.labels.get("testpilot-run", "")
    return remote


def database_servers(suite_path: str, pool: str) -> tuple[EnvironmentConfig, list[str]]:
    """The pool's settings with its database services pointed at their DatabaseServer blocks (read here)."""
    from blocks.database import DatabaseServer

    config = suite_at(suite_path).environments[pool]
    found: dict[str, tuple[str, str]] = {}
    for name in wanted_blocks(config):
        try:
            block = cast(DatabaseServer, DatabaseServer.load(name, _sync=True))  # type: ignore[call-arg]
        except ValueError:  # no such block: plan_servers decides whether that is an error
            continue
        found[name] = (block.kind, block.get_url())
    settings = get_settings()
    return plan_servers(pool, config, found, {"postgres": settings.postgres_url, "mysql": settings.mysql_url})


def _request(suite_path: str, pool: str, apps: list[str], run_id: str, slot: int) -> tuple[AcquireRequest, list[str]]:
    suite = suite_at(suite_path)
    config, notes = database_servers(suite_path, pool)
    return AcquireRequest(
        pool=pool, config=config, run_id=run_id, slot=slot,
        apps={a: str(suite.app_dir(a)) for a in apps},
        requirements={a: _requirements(suite.app_dir(a), suite.apps[a].requirements) for a in apps}), notes


@task(name="provision", task_run_name="provision[{pool}]", **TASK_DEFAULTS)
def provision(suite_path: str, pool: str, apps: list[str], run_id: str, slot: int = 0) -> Environment:
    """Acquire member ``slot`` of ``pool``, reset to baseline and health-checked, with the apps installed."""
    request, notes = _request(suite_path, pool, apps, run_id, slot)
    log = get_run_logger()
    for note in notes:
        log.warning("%s", note)
    provider = get_provider(pool, suite_at(suite_path).environments[pool])
    if isinstance(provider, StagedProvider):
        env = provider.provision(request)
        log.info("environment %s is up at %s (reset to %s, healthy)", env.id, env.host,
                 "its warm snapshot" if env.metadata.get("warm_key") else "baseline")
        env = install(suite_path, env, apps, run_id)
    else:
        env = provider.acquire(request)
        log.info("environment %s ready at %s (%s)", env.id, env.workdir, env.host)
    env.metadata["notes"] = notes
    return env


@task(name="install", task_run_name="install[{env.id}]", **TASK_DEFAULTS)
def install(suite_path: str, env: Environment, apps: list[str], run_id: str) -> Environment:
    """Upload the apps to a remote environment and install them (the seed's 'install' phase)."""
    request, _ = _request(suite_path, env.pool, apps, run_id, env.slot)
    provider = get_provider(env.pool, suite_at(suite_path).environments[env.pool])
    assert isinstance(provider, StagedProvider)
    log = get_run_logger()
    staged = provider.stage(env, request, on_line=lambda _stream, line: log.info("%s", line))
    log.info("installed %s in %s on %s", ", ".join(apps), staged.workdir, staged.host)
    return staged


def _requirements(app_dir: Path, declared: str | None) -> str | None:
    path = app_dir / (declared or "requirements.txt")
    return str(path) if path.exists() else None


@task(name="teardown", **TASK_DEFAULTS)
def teardown(suite_path: str, envs: list[Environment]) -> list[str]:
    """Kill what still runs and hand every environment back; returns what was released."""
    return release_all(suite_path, envs)


def release_all(suite_path: str, envs: list[Environment]) -> list[str]:
    """Plain-function teardown, usable when the task engine itself is being interrupted.

    A dirty environment is handed back marked so: its provider resets it (or, locally, removes it)
    before anyone gets it again. One failed release does not stop the others; the first error is
    raised at the end.
    """
    stop_commands(envs)
    suite = suite_at(suite_path)
    released: list[str] = []
    errors: list[BaseException] = []
    for env in envs:
        run_id = env.labels.get("testpilot-run", "")
        if run_id and env.databases:
            try:
                drop_data(env, run_id)
            except TestpilotError as exc:  # the provider drops the whole database next; gc catches the rest
                logger.warning("could not drop the run's data in %s: %s", env.id, exc)
        try:
            get_provider(env.pool, suite.environments[env.pool]).release(env)
            released.append(env.id)
        except Exception as exc:  # noqa: BLE001 - keep releasing the rest; the reaper is the backstop
            logger.error("could not release %s on %s: %s", env.id, env.host, exc)
            errors.append(exc)
    if errors:
        raise errors[0]
    return released


def stop_commands(envs: list[Environment]) -> int:
    """Stop every command of this process still running in ``envs`` (local process groups, remote ones
    over SSH) and forbid reconnects to them: nothing of this run may touch a machine once it is handed back."""
    stopped = kill_all_running()
    for env in envs:
        if env.ssh is not None:
            stopped += fence_hosts(env.ssh.host, env.ssh.port, owner=env.labels.get("testpilot-run", ""),
                                   why="the run is tearing down its environments")
    return stopped


def cleanup_hook(flow: object, flow_run: object, state: object) -> None:
    """Prefect on_crashed / on_cancellation hook: remove whatever the run left behind."""
    from blocks.database import server_urls
    from testpilot.environments.local import cleanup_run

    cleanup_run(get_settings().home, str(getattr(flow_run, "id", "")), server_urls())

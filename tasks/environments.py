"""Provision and tear down environments. Providers are built here from settings and blocks."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from prefect import get_run_logger, task

from tasks.common import TASK_DEFAULTS, suite_at
from tasks.test_data import drop_data
from testpilot.environments.base import AcquireRequest, Environment, Provider
from testpilot.environments.config import EnvironmentConfig
from testpilot.environments.local import LocalProvider
from testpilot.errors import ConfigError, TestpilotError
from testpilot.execution.local import kill_all_running
from testpilot.settings import get_settings

logger = logging.getLogger("testpilot.teardown")
_providers: dict[str, Provider] = {}
_providers_lock = threading.Lock()


def get_provider(pool: str, config: EnvironmentConfig) -> Provider:
    """One provider object per pool and process, so claims made at acquire are released later."""
    with _providers_lock:
        if pool not in _providers:
            if config.provider != "local":
                raise ConfigError(f"provider {config.provider!r} is not available in this build",
                                  field=f"environments.{pool}.provider", hint="use provider: local")
            settings = get_settings()
            _providers[pool] = LocalProvider(settings.home, postgres_url=settings.postgres_url,
                                             mysql_url=settings.mysql_url)
        return _providers[pool]


@task(name="provision", **TASK_DEFAULTS)
def provision(suite_path: str, pool: str, apps: list[str], run_id: str) -> Environment:
    """Acquire one environment of ``pool`` reset to baseline, with the given apps installed."""
    suite = suite_at(suite_path)
    config = suite.environments[pool]
    request = AcquireRequest(
        pool=pool, config=config, run_id=run_id,
        apps={a: str(suite.app_dir(a)) for a in apps},
        requirements={a: _requirements(suite.app_dir(a), suite.apps[a].requirements) for a in apps})
    env = get_provider(pool, config).acquire(request)
    get_run_logger().info("environment %s ready at %s (%s)", env.id, env.workdir, env.host)
    return env


def _requirements(app_dir: Path, declared: str | None) -> str | None:
    path = app_dir / (declared or "requirements.txt")
    return str(path) if path.exists() else None


@task(name="teardown", **TASK_DEFAULTS)
def teardown(suite_path: str, envs: list[Environment]) -> list[str]:
    """Kill what still runs and hand every environment back; returns what was released."""
    return release_all(suite_path, envs)


def release_all(suite_path: str, envs: list[Environment]) -> list[str]:
    """Plain-function teardown, usable when the task engine itself is being interrupted."""
    kill_all_running()
    suite = suite_at(suite_path)
    released = []
    for env in envs:
        run_id = env.labels.get("testpilot-run", "")
        if run_id and env.databases:
            try:
                drop_data(env, run_id)
            except TestpilotError as exc:  # the provider drops the whole database next; gc catches the rest
                logger.warning("could not drop the run's data in %s: %s", env.id, exc)
        provider = get_provider(env.pool, suite.environments[env.pool])
        if env.dirty:
            provider.destroy(env)
        else:
            provider.release(env)
        released.append(env.id)
    return released


def cleanup_hook(flow: object, flow_run: object, state: object) -> None:
    """Prefect on_crashed / on_cancellation hook: remove whatever the run left behind."""
    from testpilot.environments.local import cleanup_run

    settings = get_settings()
    servers = [u for u in (settings.postgres_url, settings.mysql_url) if u]
    cleanup_run(settings.home, str(getattr(flow_run, "id", "")), servers)

"""Which database server backs each ``postgres``/``mysql`` service of a pool (pure; blocks are read by a task).

Order: the service's own ``url``; the DatabaseServer block its ``server`` names (which must exist);
the default block ``testpilot-<type>``; ``TESTPILOT_<TYPE>_URL``. With none of these, SQLite stands in
for the server, and a note says so loudly: a run that asked for PostgreSQL must not pass silently
on SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping

from testpilot.environments.config import EnvironmentConfig, ServiceConfig
from testpilot.errors import ConfigError


def default_block(kind: str) -> str:
    """The DatabaseServer block ``deployments.setup`` saves for a server type."""
    return f"testpilot-{kind}"


def wanted_blocks(config: EnvironmentConfig) -> list[str]:
    """DatabaseServer block names worth loading for a pool's services."""
    return list(dict.fromkeys(svc.server or default_block(svc.type) for svc in config.services.values()
                              if svc.type != "sqlite" and not svc.url))


def plan_servers(pool: str, config: EnvironmentConfig, blocks: Mapping[str, tuple[str, str]],
                 fallback: Mapping[str, str | None]) -> tuple[EnvironmentConfig, list[str]]:
    """The pool's config with each server service's ``url`` filled in, and notes for the report.

    ``blocks`` maps a loaded block's name to (kind, admin url); ``fallback`` maps a type to the URL from
    the worker's settings."""
    services: dict[str, ServiceConfig] = {}
    notes: list[str] = []
    for name, svc in config.services.items():
        field = f"environments.{pool}.services.{name}"
        if svc.type == "sqlite" or svc.url:
            services[name] = svc
            continue
        block = svc.server or default_block(svc.type)
        if block in blocks:
            kind, url = blocks[block]
            if kind != svc.type:
                raise ConfigError(f"DatabaseServer block {block!r} is a {kind} server, the service is {svc.type}",
                                  field=f"{field}.server", hint=f"name a {svc.type} DatabaseServer block")
            services[name] = svc.model_copy(update={"url": url})
        elif svc.server:
            raise ConfigError(f"no DatabaseServer block named {svc.server!r}", field=f"{field}.server",
                              hint="create it (deployments.setup saves testpilot-postgres / testpilot-mysql from "
                                   "TESTPILOT_POSTGRES_URL / TESTPILOT_MYSQL_URL) or fix the name")
        elif fallback.get(svc.type):
            services[name] = svc.model_copy(update={"url": fallback[svc.type]})
        else:
            services[name] = svc
            notes.append(f"WARNING: SQLite stands in for the {svc.type} service {name!r} of pool {pool!r}: "
                         f"no DatabaseServer block {block!r}, no {field}.url and no "
                         f"TESTPILOT_{svc.type.upper()}_URL. Results may differ from {svc.type}.")
    return config.model_copy(update={"services": services}), notes

"""Create the process work pool and register Testpilot's blocks. Safe to run any number of times.

    .venv/bin/python -m deployments.setup [--pool testpilot-process] [--limit N]

The work pool is created with a concurrency limit of ``--limit`` runs at once across all its workers
(``TESTPILOT_WORK_POOL_LIMIT``, default 8; 0 means no limit). An existing pool keeps its limit unless
``--limit`` or the variable is given. Each worker's own share is ``prefect worker start --limit N``.

Every block type is registered. Blocks are saved (overwritten) from environment variables when
they are set; values are never printed. The results storage block (``TESTPILOT_RESULTS_STORAGE``, default
``local-file-system/testpilot-results`` under ``$TESTPILOT_HOME/results-storage``) is saved unless it
exists: workers copy junit.xml and report.json there and ``testpilot ci`` downloads them. With workers
on other machines, save a shared one instead (e.g. a ``RemoteFileSystem`` with an ``s3://`` basepath).

Databases: ``TESTPILOT_POSTGRES_URL`` and ``TESTPILOT_MYSQL_URL`` become ``DatabaseServer`` blocks
``testpilot-postgres`` and ``testpilot-mysql``.

Proxmox VE, when ``TESTPILOT_PROXMOX_HOST`` is set -> ``ProxmoxCluster`` ``testpilot-proxmox``:
``TESTPILOT_PROXMOX_HOST`` (``pve.example.com[:8006]``), ``_USER`` (default ``root@pam``),
``_TOKEN_NAME`` and ``_TOKEN_VALUE`` (or ``_PASSWORD``), ``_VERIFY_SSL`` (``false`` to switch it
off), ``_CA_BUNDLE`` (PEM path), ``_SSH_USER`` (default ``testpilot``), ``_SSH_KEY_FILE`` (a private
key file whose text is stored in the block). With ``TESTPILOT_PROXMOX_TEMPLATE_VMID`` also the
``EnvironmentPool`` ``proxmox`` (``_POOL_SIZE``, default 1; ``_NODES``, comma-separated;
``_FULL_CLONE``).

Hetzner Cloud, when ``TESTPILOT_HETZNER_TOKEN`` is set -> ``HetznerProject`` ``testpilot-hetzner``
and ``EnvironmentPool`` ``hetzner``: ``_ENDPOINT`` (default the public API), ``_LOCATION``,
``_SERVER_TYPE``, ``_IMAGE``, ``_SSH_KEY_FILE``, ``_POOL_SIZE``.

SSH machines: ``TESTPILOT_SSH_MACHINES`` is a JSON list of objects with the ``SSHMachine`` block's
fields plus ``name`` (lowercase letters, digits, dashes) and optionally ``private_key_file``, e.g.
``[{"name": "box-1", "host": "10.0.0.5", "user": "ci", "host_key": "ssh-ed25519 AAAA...",
"private_key_file": "/etc/testpilot/id_ed25519"}]``. Each becomes an ``SSHMachine`` block (a host key
already recorded in the block is kept when the JSON has none), and all of them the ``EnvironmentPool``
``ssh``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
from prefect.exceptions import ObjectAlreadyExists
from pydantic import SecretStr, ValidationError

from blocks.database import DatabaseServer
from blocks.environments import EnvironmentPool, HetznerProject, ProxmoxCluster, SSHMachine
from blocks.github import GitHubIssues
from blocks.notifications import SmtpEmail
from tasks.verdict import load_storage
from testpilot.errors import ConfigError
from testpilot.settings import get_settings

POOL = "testpilot-process"
DEFAULT_POOL_LIMIT = 8
BLOCK_TYPES = (DatabaseServer, ProxmoxCluster, HetznerProject, SSHMachine, EnvironmentPool, GitHubIssues, SmtpEmail)
_BLOCK_NAME = re.compile(r"^[a-z0-9-]+$")


def ensure_work_pool(name: str = POOL, limit: int | None = None) -> bool:
    """Return True when the pool was created, False when it already existed.

    ``limit`` runs at once across the pool's workers (0: none); None keeps an existing pool's limit
    and gives a new one ``DEFAULT_POOL_LIMIT``."""
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process",
                                                   concurrency_limit=_pool_limit(DEFAULT_POOL_LIMIT if limit is None
                                                                                 else limit)))
            return True
        except ObjectAlreadyExists:
            if limit is not None:
                client.update_work_pool(name, WorkPoolUpdate(concurrency_limit=_pool_limit(limit)))
            return False


def _pool_limit(limit: int) -> int | None:
    return limit or None


def ensure_results_storage() -> str:
    """Save the default results storage (a LocalFileSystem under TESTPILOT_HOME) unless a block of that
    name exists; a block configured by hand or by an earlier run (e.g. a shared mount) is kept."""
    from prefect.filesystems import LocalFileSystem

    slug = get_settings().results_storage
    kind, _, name = slug.partition("/")
    if load_storage(slug) is not None:
        return f"{slug} (kept)"
    if kind != "local-file-system":
        raise ConfigError(f"storage block {slug!r} does not exist", field="TESTPILOT_RESULTS_STORAGE",
                          hint="save that block first (e.g. a RemoteFileSystem with an s3:// basepath)")
    folder = get_settings().home / "results-storage"
    LocalFileSystem(basepath=str(folder)).save(name)
    return f"{slug} ({folder})"


def register_blocks(environ: Mapping[str, str] | None = None) -> list[str]:
    """Register every block type (so the UI offers them); save the blocks the variables describe.
    Returns the saved names."""
    env = os.environ if environ is None else environ
    for kind in BLOCK_TYPES:
        kind.register_type_and_schema()
    saved = []
    kinds: tuple[tuple[Literal["postgres", "mysql"], str], ...] = (
        ("postgres", "TESTPILOT_POSTGRES_URL"), ("mysql", "TESTPILOT_MYSQL_URL"))
    for kind_name, var in kinds:
        if env.get(var):
            DatabaseServer(kind=kind_name, url=SecretStr(env[var])).save(f"testpilot-{kind_name}", overwrite=True)
            saved.append(f"testpilot-{kind_name}")
    saved += _proxmox(env) + _hetzner(env) + _ssh_machines(env)
    return saved


def _flag(env: Mapping[str, str], var: str, default: bool) -> bool:
    value = env.get(var, "").strip().lower()
    return default if not value else value not in ("0", "false", "no", "off")


def _int(env: Mapping[str, str], var: str, default: int) -> int:
    value = env.get(var, "").strip()
    if not value:
        return default
    if not value.isdigit():
        raise ConfigError(f"{var} must be a whole number", field=var)
    return int(value)


def _secret(value: str | None) -> SecretStr | None:
    return SecretStr(value) if value else None


def _key_text(var: str, path: str | None) -> SecretStr | None:
    if not path:
        return None
    try:
        return SecretStr(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the private key file: {exc.strerror}", field=var,
                          hint="give the path of a key file readable by this user") from None


def _save(block: Any, name: str) -> str:
    block.save(name, overwrite=True)
    return name


def _build(kind: type[Any], var: str, **fields: Any) -> Any:
    unknown = sorted(set(fields) - set(kind.model_fields))
    if unknown:  # blocks accept extra fields, so a typo would be stored silently
        raise ConfigError(f"{kind.__name__} has no field {unknown[0]!r}", field=var,
                          hint=f"known fields: {', '.join(sorted(kind.model_fields))}")
    try:
        return kind(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{kind.__name__} {where}: {first['msg']}", field=var,
                          hint="see the variables in deployments/setup.py") from None


def _proxmox(env: Mapping[str, str]) -> list[str]:
    if not env.get("TESTPILOT_PROXMOX_HOST"):
        return []
    p = "TESTPILOT_PROXMOX_"
    cluster = _build(ProxmoxCluster, f"{p}HOST", host=env[f"{p}HOST"], user=env.get(f"{p}USER") or "root@pam",
                     token_name=env.get(f"{p}TOKEN_NAME") or None, token_value=_secret(env.get(f"{p}TOKEN_VALUE")),
                     password=_secret(env.get(f"{p}PASSWORD")), verify_ssl=_flag(env, f"{p}VERIFY_SSL", True),
                     ca_bundle=env.get(f"{p}CA_BUNDLE") or None, ssh_user=env.get(f"{p}SSH_USER") or "testpilot",
                     ssh_private_key=_key_text(f"{p}SSH_KEY_FILE", env.get(f"{p}SSH_KEY_FILE")))
    saved = [_save(cluster, "testpilot-proxmox")]
    if env.get(f"{p}TEMPLATE_VMID"):
        spec: dict[str, Any] = {"template_vmid": _int(env, f"{p}TEMPLATE_VMID", 0),
                                "full_clone": _flag(env, f"{p}FULL_CLONE", False)}
        nodes = [n.strip() for n in env.get(f"{p}NODES", "").split(",") if n.strip()]
        if nodes:
            spec["nodes"] = nodes
        pool = EnvironmentPool(provider="proxmox", size=_int(env, f"{p}POOL_SIZE", 1), target="testpilot-proxmox",
                               spec=spec)
        saved.append(_save(pool, "proxmox"))
    return saved


def _hetzner(env: Mapping[str, str]) -> list[str]:
    if not env.get("TESTPILOT_HETZNER_TOKEN"):
        return []
    p = "TESTPILOT_HETZNER_"
    fields: dict[str, Any] = {"token": SecretStr(env[f"{p}TOKEN"]),
                              "ssh_private_key": _key_text(f"{p}SSH_KEY_FILE", env.get(f"{p}SSH_KEY_FILE"))}
    for var, name in (("ENDPOINT", "api_endpoint"), ("LOCATION", "location"), ("SERVER_TYPE", "server_type"),
                      ("IMAGE", "image")):
        if env.get(p + var):
            fields[name] = env[p + var]
    saved = [_save(_build(HetznerProject, f"{p}TOKEN", **fields), "testpilot-hetzner")]
    pool = EnvironmentPool(provider="hetzner", size=_int(env, f"{p}POOL_SIZE", 1), target="testpilot-hetzner")
    saved.append(_save(pool, "hetzner"))
    return saved


def _ssh_machines(env: Mapping[str, str]) -> list[str]:
    var = "TESTPILOT_SSH_MACHINES"
    if not env.get(var):
        return []
    try:
        items = json.loads(env[var])
    except json.JSONDecodeError as exc:
        raise ConfigError(f"is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field=var,
                          hint='give a list like [{"name": "box-1", "host": "10.0.0.5", ...}]') from None
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise ConfigError("must be a non-empty JSON list of objects", field=var,
                          hint='give a list like [{"name": "box-1", "host": "10.0.0.5", ...}]')
    names = []
    blocks = []
    for index, raw in enumerate(items):
        item = dict(raw)
        field = f"{var}[{index}]"
        name = item.pop("name", None)
        if not isinstance(name, str) or not _BLOCK_NAME.match(name):
            raise ConfigError("needs a name of lowercase letters, digits and dashes", field=f"{field}.name")
        if name in names:
            raise ConfigError(f"machine name {name!r} repeats", field=f"{field}.name")
        key_path = item.pop("private_key_file", None)
        if key_path:
            item["private_key"] = _key_text(f"{field}.private_key_file", str(key_path))
        block = _build(SSHMachine, field, **item)
        if not block.host_key:
            block.host_key = _recorded_host_key(name)
        names.append(name)
        blocks.append(block)
    saved = [_save(block, name) for block, name in zip(blocks, names, strict=True)]
    pool = EnvironmentPool(provider="ssh", size=len(names), target=names)
    return saved + [_save(pool, "ssh")]


def _recorded_host_key(name: str) -> str:
    """The key an earlier run pinned in the block (trust on first use), so re-running setup keeps it."""
    try:
        existing = SSHMachine.load(name, _sync=True)  # type: ignore[call-arg]  # async_dispatch's switch
    except ValueError:
        return ""
    return str(getattr(existing, "host_key", "") or "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", default=POOL)
    parser.add_argument("--limit", type=int, default=None,
                        help=f"runs at once across the pool's workers (0: no limit; new pools: {DEFAULT_POOL_LIMIT})")
    args = parser.parse_args()
    limit = args.limit if args.limit is not None else _int(os.environ, "TESTPILOT_WORK_POOL_LIMIT", -1)
    created = ensure_work_pool(args.pool, None if limit < 0 else limit)
    with get_client(sync_client=True) as client:
        current = client.read_work_pool(args.pool).concurrency_limit
    print(f"work pool {args.pool}: {'created' if created else 'already there'}, "
          f"limit {current if current is not None else 'none'} run(s) at once")
    from deployments.zombies import ensure_zombie_automation

    print(f"zombie-run automation: {'created' if ensure_zombie_automation() else 'already there'}")
    saved = register_blocks()
    print(f"blocks registered; saved: {', '.join(saved) or 'none (no TESTPILOT_* block variables set)'}")
    print(f"results storage for `testpilot ci`: {ensure_results_storage()}")


if __name__ == "__main__":
    main()

"""Shared by the remote-run tests: how simulated hosts install apps, and a suite pointed at a remote pool."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from testpilot.environments.staging import InstallSettings


def install_settings() -> InstallSettings:
    """Simulated VMs run on this machine as their own user: uv from our venv (world-readable), the system
    Python, and uv's cache in the VM's home (a reset wipes it, as on a real VM)."""
    from uv import find_uv_bin

    python = shutil.which("python3", path="/usr/bin:/bin") or "python3"
    # The host reaches the package index the way this machine does (a site CA, when it has one).
    passed = {k: os.environ[k] for k in ("SSL_CERT_FILE", "SSL_CERT_DIR", "UV_INDEX_URL", "HTTPS_PROXY")
              if k in os.environ}
    return InstallSettings(uv=find_uv_bin(), python=python, env=passed, timeout=300)


def remote_suite(repo: Path, pool: dict[str, Any], *, only: list[str] | None = None) -> Path:
    """Rewrite the suite in ``repo`` so that every app (or ``only`` these) runs in one pool named ``remote``."""
    path = repo / "testpilot.yaml"
    suite = yaml.safe_load(path.read_text())
    services = next(iter(suite.get("environments", {}).values()), {}).get("services", {})
    suite["environments"] = {"remote": {"services": services, **pool}}
    for name in list(suite["apps"]):
        if only is not None and name not in only:
            del suite["apps"][name]
            suite.get("selection", {}).pop(name, None)
            continue
        suite["apps"][name]["environment"] = "remote"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path

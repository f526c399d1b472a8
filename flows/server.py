"""Make sure a Prefect API is there: the configured one, or a local SQLite-backed server we start.

The started server is detached from the CLI process so it stays up afterwards, for looking at the
run in the UI; later invocations find it on the same port and reuse it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from testpilot.errors import InfrastructureError


def _healthy(api_url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=timeout) as resp:  # noqa: S310
            return bool(resp.status == 200)
    except OSError:
        return False


def configured_api_url() -> str | None:
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def ensure_api(home: Path, port: int | None = None, wait: float = 90.0) -> tuple[str, bool]:
    """Return (api_url, started). Starts ``prefect server start`` in the background when needed."""
    url = configured_api_url()
    if url:
        return url, False
    port = port or int(os.environ.get("TESTPILOT_PREFECT_PORT", "4200"))
    url = f"http://127.0.0.1:{port}/api"
    if not _healthy(url):
        home.mkdir(parents=True, exist_ok=True)
        log = open(home / "prefect-server.log", "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_HOME": str(home / "prefect"), "PREFECT_UI_API_URL": url}
        subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                          "--port", str(port)], stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                         env=env, start_new_session=True)
        deadline = time.monotonic() + wait
        while not _healthy(url):
            if time.monotonic() > deadline:
                raise InfrastructureError(f"the local Prefect server did not start on port {port} within {wait:.0f}s",
                                          host="127.0.0.1", hint=f"see {home / 'prefect-server.log'}")
            time.sleep(0.5)
    os.environ["PREFECT_API_URL"] = url
    return url, True

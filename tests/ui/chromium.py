"""Drive Debian's headless ``chromium`` over the DevTools protocol: open a page, click, read the rendered
text, take screenshots. For the UI test and ``docs/screenshots.py``.

Hand-written (about 80 lines) because Playwright and Selenium download or pin their own browsers,
and the tests must use the distribution's ``chromium``; ``websockets`` already comes with Prefect.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

from flows.server import stop_process


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless chromium with one page. Use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 1000) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="testpilot-chromium-"))
        exe = chromium_path()
        if exe is None:
            raise RuntimeError("chromium is not installed (apt-get install chromium)")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port within 30 s")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as resp:  # noqa: S310 - loopback
            page = next(t for t in json.load(resp) if t["type"] == "page")
        self.ws = connect(page["webSocketDebuggerUrl"], max_size=None)
        self.ids = itertools.count(1)
        self.width, self.height = width, height

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result.get("result", {}).get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        return str(self.js("document.body ? document.body.innerText : ''") or "")

    def wait_for(self, needle: str, timeout: float = 60) -> str:
        """The page's rendered text once it contains ``needle``; AssertionError with the text otherwise."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            time.sleep(0.5)
        raise AssertionError(f"{needle!r} not shown within {timeout:.0f}s; page text:\n{text[:3000]}")

    def click_text(self, label: str) -> bool:
        """Click the first button, tab or link whose visible text is exactly ``label``."""
        return bool(self.js(
            "(() => { const els = [...document.querySelectorAll('button, a, [role=tab], .p-tab')];"
            f" const el = els.find(e => e.innerText.trim() === {json.dumps(label)});"
            " if (el) { el.click(); return true; } return false; })()"))

    def screenshot(self, path: Path) -> None:
        """A PNG of the viewport."""
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def resize(self, height: int) -> None:
        """Make the viewport ``height`` pixels tall, for a long page; call before ``open``."""
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=height, deviceScaleFactor=1,
                  mobile=False)

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        stop_process(self.proc, 10)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

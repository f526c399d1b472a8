"""Group output lines that arrive close together into one log entry.

pytest writes a block (a progress line, a failure's traceback) as many lines within milliseconds; one
log entry per line makes the Prefect log view unreadable and costs one API record each. Hand-written
because the logging module's MemoryHandler flushes on count or level, not on a quiet period.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class LineBatcher:
    """Collect lines; emit them joined once ``window`` seconds passed since the first of a batch,
    when ``max_lines`` are waiting, or on ``close``."""

    def __init__(self, emit: Callable[[str], None], window: float = 0.5, max_lines: int = 200) -> None:
        self.emit, self.window, self.max_lines = emit, window, max_lines
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def add(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            if len(self._lines) < self.max_lines:
                if self._timer is None:
                    self._timer = threading.Timer(self.window, self.flush)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self.flush()

    def flush(self) -> None:
        with self._lock:
            lines, self._lines = self._lines, []
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if lines:
            self.emit("\n".join(lines))

    def close(self) -> None:
        self.flush()

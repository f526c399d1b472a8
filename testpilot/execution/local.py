"""Run a command as a local subprocess, streaming its output line by line as it arrives.

Both pipes are read by threads into one queue, so the caller sees stdout and stderr interleaved in
arrival order and can enforce the timeout or an abort pattern while the command still runs. The
command gets its own process group so a timeout, an abort or a teardown kills its children too.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO

from pydantic import BaseModel, Field

LineSink = Callable[[str, str], None]
"""Called with (stream, line) for each line, stream being 'stdout' or 'stderr'."""

Watch = Callable[[str], str | None]
"""Called with each line; returning a reason aborts the command."""

_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()


class CommandResult(BaseModel):
    exit_code: int | None = None
    duration: float = 0.0
    timed_out: bool = False
    aborted: str = ""
    tail: list[str] = Field(default_factory=list, description="Last lines of output.")


def _pump(stream: IO[bytes], name: str, lines: queue.Queue[tuple[str, str] | None]) -> None:
    for raw in iter(stream.readline, b""):
        lines.put((name, raw.decode("utf-8", "replace").rstrip("\r\n")))
    lines.put(None)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_all_running() -> int:
    """Kill every command this process started that still runs (used by teardown on interrupt)."""
    with _live_lock:
        procs = list(_live)
    for proc in procs:
        _kill_group(proc)
    return len(procs)


def run_local(argv: list[str], *, cwd: str, env: dict[str, str], timeout: float,
              on_line: LineSink | None = None, watch: Watch | None = None,
              tail_lines: int = 200) -> CommandResult:
    """Run ``argv`` (no shell), streaming lines to ``on_line``; kill it on timeout or abort."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    with _live_lock:
        _live.add(proc)
    lines: queue.Queue[tuple[str, str] | None] = queue.Queue()
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [threading.Thread(target=_pump, args=(s, n, lines), daemon=True)
             for s, n in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
    for pump in pumps:
        pump.start()
    result = CommandResult()
    tail: deque[str] = deque(maxlen=tail_lines)
    open_streams = 2
    deadline = started + timeout
    try:
        while open_streams:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                result.timed_out = True
                _kill_group(proc)
                break
            try:
                item = lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                continue
            if item is None:
                open_streams -= 1
                continue
            stream, line = item
            tail.append(line)
            if on_line:
                on_line(stream, line)
            if watch and (reason := watch(line)):
                result.aborted = reason
                _kill_group(proc)
                break
        try:
            result.exit_code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            result.timed_out = True
            _kill_group(proc)
            result.exit_code = proc.wait()
    finally:
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()
        with _live_lock:
            _live.discard(proc)
    result.duration = time.monotonic() - started
    result.tail = list(tail)
    return result

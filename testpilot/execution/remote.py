"""Running commands on a remote host over SSH (paramiko), with streamed output and SFTP.

Host keys are always verified: against a pinned key by default (an unknown or changed key is
rejected), or, only when asked for, trusted on first use and recorded. Commands are argv lists
joined with ``shlex.quote``, so nothing reaches the remote shell unquoted.

Dropped connections: a run, upload or download whose connection drops gets exactly ONE
reconnect, and the operation is then done again from the start (a test command is re-run, after
killing what is left of the first attempt; uploads and downloads are idempotent). We re-run
instead of resuming because resuming needs a detached process and log files on the host, which
a dead session may have left half written; a test run must be repeatable anyway. A second drop,
or a failed reconnect, raises :class:`InfrastructureError` naming the host, with ``dirty=True``
in its details: the environment must be reset before anyone uses it again.
"""

from __future__ import annotations

import logging
import re
import select
import shlex
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import paramiko

from testpilot.environments.base import SSHAccess
from testpilot.errors import ConfigError, InfrastructureError, StreamAbort, TestpilotError
from testpilot.execution.monitor import Event, StreamMonitor
from testpilot.execution.sftp import DEFAULT_UPLOAD_EXCLUDES, fetch_file, put_file, upload_tree
from testpilot.execution.ssh_keys import (
    HostKeyRejected,
    UnknownHostKeyPolicy,
    fingerprint,
    key_text,
    load_private_key,
    parse_host_key,
)

__all__ = ["HostKeyRejected", "OnEvent", "OnLine", "RemoteHost", "RemoteResult", "fence_hosts", "remote_command"]

log = logging.getLogger(__name__)

OnLine = Callable[[str, str], None]
OnEvent = Callable[[Event], None]
T = TypeVar("T")

_PID_MARKER = "testpilot-pid:"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DROPS = (EOFError, OSError, paramiko.SSHException)
_hosts: weakref.WeakSet[RemoteHost] = weakref.WeakSet()  # every live RemoteHost of this process, to fence
_hosts_lock = threading.Lock()


@dataclass
class RemoteResult:
    """What a remote command did; the same fields as a local run's result."""

    exit_code: int | None
    duration: float
    timed_out: bool = False
    aborted: str = ""
    tail: str = ""
    host: str = ""
    dirty: bool = False
    reconnects: int = 0
    pid: int | None = None
    events: list[Event] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.aborted

    def raise_if_aborted(self) -> None:
        """Raise :class:`StreamAbort` when an abort pattern stopped the run."""
        abort = next((e for e in self.events if e.action == "abort"), None)
        if abort is not None:
            raise StreamAbort(f"run on {self.host} aborted: {self.aborted}", pattern=abort.pattern,
                              line=abort.line, host=self.host)


class _Dropped(Exception):
    """The connection died under an operation; the caller decides whether to reconnect."""


class _CallbackFailed(Exception):
    """``on_line`` or ``on_event`` raised: not a connection problem, so never retried."""


def remote_command(argv: Sequence[str], *, cwd: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The shell text for ``argv``: every piece quoted. The first stdout line it prints is its pid."""
    if not argv:
        raise ConfigError("empty command", field="command", hint="give the command as a list of arguments")
    for name in env or {}:
        if not _ENV_NAME.match(name):
            raise ConfigError(f"environment variable name {name!r} is not valid", field="env",
                              hint="use letters, digits and underscores")
    parts = []
    if cwd:
        parts.append(f"cd {shlex.quote(cwd)}")
    # The session runs in its own process group (sshd calls setsid), led by this shell: $$ is the
    # group id the runner kills on abort or timeout.
    parts.append(f"printf '{_PID_MARKER}%s\\n' \"$$\"")
    assignments = [shlex.quote(f"{k}={v}") for k, v in (env or {}).items()]
    prefix = "exec env " + " ".join(assignments) + " " if assignments else "exec "
    parts.append(prefix + shlex.join(argv))
    return " && ".join(parts)


class RemoteHost:
    """One SSH host: connect (with verified host key), run, upload, download.

    Secrets (``password``, ``private_key``, ``passphrase``) are plain values from the caller and
    are never logged or shown in ``repr``. With ``trust_on_first_use=True`` and no pinned key, the
    first key seen is accepted, kept in ``host_key`` and passed to ``on_new_host_key`` so the
    caller can record it; from then on it is pinned like any other.
    """

    def __init__(self, host: str, port: int = 22, user: str = "root", *, host_key: str = "",
                 password: str | None = None, private_key: str | None = None, key_file: str | None = None,
                 passphrase: str | None = None, trust_on_first_use: bool = False,
                 on_new_host_key: Callable[[str], None] | None = None, connect_timeout: float = 10.0,
                 poll_interval: float = 0.05, reconnect_delay: float = 0.5, kill_grace: float = 0.5,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.host, self.port, self.user = host, port, user
        self._pinned = parse_host_key(host_key) if host_key else None
        self._password, self._passphrase = password, passphrase
        self._pkey = load_private_key(private_key, passphrase) if private_key else None
        self._key_file = key_file
        self.trust_on_first_use = trust_on_first_use
        self.on_new_host_key = on_new_host_key
        self.connect_timeout, self.poll_interval = connect_timeout, poll_interval
        self.reconnect_delay, self.kill_grace = reconnect_delay, kill_grace
        self._clock, self._sleep = clock, sleep
        self._client: paramiko.SSHClient | None = None
        self.owner = ""  # the run this connection works for (fence_hosts matches on it)
        self._fenced = ""  # why this object may not connect any more (teardown began)
        self._running: set[int] = set()  # remote process groups started and not yet seen to end
        with _hosts_lock:
            _hosts.add(self)

    @classmethod
    def from_access(cls, access: SSHAccess, *, password: str | None = None, private_key: str | None = None,
                    **options: Any) -> RemoteHost:
        """For an acquired ``Environment.ssh``; the secrets come from the caller's Block."""
        return cls(access.host, access.port, access.user, host_key=access.host_key, password=password,
                   private_key=private_key, key_file=access.key_file, **options)

    @property
    def where(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    @property
    def host_key(self) -> str:
        """The pinned (or first-use recorded) key, ``'ssh-ed25519 AAAA...'``; empty if none yet."""
        return key_text(self._pinned) if self._pinned else ""

    def __repr__(self) -> str:
        return f"RemoteHost({self.where})"

    # ------------------------------------------------------------------ connection
    def connect(self) -> RemoteHost:
        if self._client is not None and self._active():
            return self
        if self._fenced:
            raise InfrastructureError(f"not reconnecting to {self.where}: {self._fenced}", host=self.host,
                                      phase="teardown", dirty=True,
                                      hint="the environment is being handed back; nothing of this run may touch it")
        return self._open()

    def _open(self) -> RemoteHost:
        self.close()
        client = paramiko.SSHClient()
        if self._pinned is not None:
            client.get_host_keys().add(self._known_name(), self._pinned.get_name(), self._pinned)
        offered: list[paramiko.PKey] = []  # a first-use key is kept only once the login succeeded
        first_use = offered.append if self.trust_on_first_use and self._pinned is None else None
        client.set_missing_host_key_policy(UnknownHostKeyPolicy(self.host, self.port, first_use))
        try:
            client.connect(self.host, self.port, self.user, password=self._password, pkey=self._pkey,
                           key_filename=self._key_file, passphrase=self._passphrase,
                           timeout=self.connect_timeout, banner_timeout=self.connect_timeout,
                           auth_timeout=self.connect_timeout, allow_agent=False, look_for_keys=False)
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyRejected(
                f"host key of {self.host}:{self.port} does not match the pinned key: expected "
                f"{fingerprint(exc.expected_key)}, got {fingerprint(exc.key)}",
                host=self.host, offered=key_text(exc.key), expected=key_text(exc.expected_key),
                hint="if the host was rebuilt on purpose, pin its new key (ssh-keyscan -t ed25519 "
                     f"-p {self.port} {self.host}); otherwise treat it as a possible interception") from exc
        except HostKeyRejected:
            client.close()
            raise
        except paramiko.AuthenticationException as exc:
            client.close()
            if "transport shut down" in str(exc) or "saw EOF" in str(exc):  # the link died mid-login
                raise InfrastructureError(f"connection to {self.where} dropped while logging in: {exc}",
                                          host=self.host, phase="connect", dirty=True,
                                          hint="check that the host is up and sshd accepts connections") from exc
            raise ConfigError(f"SSH login as {self.where} was refused: {exc}", field="credentials",
                              hint="check the user and the key or password of this machine") from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            client.close()
            raise InfrastructureError(f"cannot connect to {self.where}: {exc}", host=self.host,
                                      phase="connect", dirty=True,
                                      hint="check that the host is up and sshd listens on that port") from exc
        self._client = client
        if offered:
            self._record_first_key(offered[0])
        return self

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def fence(self, why: str) -> int:
        """Stop every command this object still runs on the host, then refuse to connect again.

        Used by teardown before the environment is handed back: a stream that is cut now raises
        instead of reconnecting and re-running on a machine another run may already hold. The
        stop uses the open connection, or one last fresh one if the link had dropped. Returns the
        number of process groups stopped."""
        self._fenced = why
        pids = sorted(self._running)
        if pids:
            try:
                if not self._active():
                    self._open()
                for pid in pids:
                    self._kill_group(pid)
                    self._running.discard(pid)
            except TestpilotError as exc:
                log.warning("could not stop %d command(s) on %s: %s", len(pids), self.where, exc)
        self.close()
        return len(pids)

    def __enter__(self) -> RemoteHost:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _active(self) -> bool:
        transport = self._client.get_transport() if self._client else None
        return bool(transport and transport.is_active())

    def _transport(self) -> paramiko.Transport:
        self.connect()
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            raise _Dropped("no active transport")
        return transport

    def _known_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def _record_first_key(self, key: paramiko.PKey) -> None:
        self._pinned = key
        log.info("trusting %s host key %s on first use", self.host, fingerprint(key))
        if self.on_new_host_key is not None:
            self.on_new_host_key(key_text(key))

    def _with_reconnect(self, what: str, phase: str, operation: Callable[[int], T], reconnect: bool = True) -> T:
        """Run ``operation(attempt)``; after a drop reconnect once and run it again, then give up."""
        attempts = 2 if reconnect else 1
        for attempt in range(attempts):
            try:
                return operation(attempt)
            except (_Dropped, *_DROPS) as exc:
                if not isinstance(exc, _Dropped) and self._active():
                    # The connection is fine: this is a real error (say, SFTP permission denied).
                    raise InfrastructureError(f"{what} on {self.host} failed: {exc}", host=self.host,
                                              phase=phase, hint="check paths and permissions on the host"
                                              ) from exc
                self.close()
                if self._fenced:
                    raise InfrastructureError(f"{what} on {self.host} was stopped: {self._fenced}",
                                              host=self.host, phase=phase, dirty=True,
                                              hint="the run was interrupted; its results so far are kept"
                                              ) from exc
                if attempt == attempts - 1:
                    word = "again " if reconnect else ""
                    raise InfrastructureError(
                        f"connection to {self.host} dropped {word}during {what}"
                        f"{' after one reconnect' if reconnect else ''}: {exc}",
                        host=self.host, phase=phase, dirty=True,
                        hint="the environment is marked dirty and will be reset before its next use") from exc
                log.warning("connection to %s dropped during %s (%s); reconnecting once", self.host, what, exc)
                self._sleep(self.reconnect_delay)
                try:
                    self.connect()
                except InfrastructureError as again:
                    raise InfrastructureError(
                        f"connection to {self.host} dropped during {what} and the reconnect failed: {again}",
                        host=self.host, phase=phase, dirty=True,
                        hint="the environment is marked dirty and will be reset before its next use") from exc
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ commands
    def run(self, argv: Sequence[str], *, on_line: OnLine | None = None, on_event: OnEvent | None = None,
            monitor: StreamMonitor | None = None, timeout: float | None = None, cwd: str | None = None,
            env: Mapping[str, str] | None = None, phase: str = "test", tail_lines: int = 50,
            reconnect: bool = True) -> RemoteResult:
        """Run ``argv`` and stream its output line by line to ``on_line(stream, line)``.

        ``stream`` is ``stdout``, ``stderr``, or ``testpilot`` for the runner's own notices
        (such as a reconnect). An ``abort`` event from ``monitor`` stops the remote process group
        at once (TERM, then KILL after ``kill_grace`` seconds) and returns with ``aborted`` set and
        ``dirty=True``; so does ``timeout`` with ``timed_out=True``. A drop is retried once (see the
        module docstring); a second one raises :class:`InfrastructureError`. ``reconnect=False``
        raises on the first drop (for commands that must not run twice, such as a reset that reboots).
        """
        command = remote_command(argv, cwd=cwd, env=env)
        started = self._clock()
        pid_box: list[int | None] = [None]  # the last attempt's remote pid, to stop it before a re-run

        def attempt(number: int) -> RemoteResult:
            if number:
                if on_line is not None:
                    on_line("testpilot", f"connection to {self.host} dropped; reconnected, re-running the command")
                if pid_box[0] is not None:
                    self._kill_group(pid_box[0])
            result = self._run_once(command, on_line, on_event, monitor, timeout, started, tail_lines, pid_box)
            if self._fenced and result.exit_code != 0:
                raise _Dropped("stopped by the fence")  # killed by teardown: say so, never a plain exit code
            result.reconnects = number
            return result

        try:
            return self._with_reconnect(f"'{shlex.join(argv)[:80]}'", phase, attempt, reconnect)
        except _CallbackFailed as failed:
            raise failed.__cause__ from None  # type: ignore[misc]  # the caller's own error, untouched

    def _run_once(self, command: str, on_line: OnLine | None, on_event: OnEvent | None,
                  monitor: StreamMonitor | None, timeout: float | None, started: float, tail_lines: int,
                  pid_box: list[int | None]) -> RemoteResult:
        channel = self._transport().open_session(timeout=self.connect_timeout)
        channel.exec_command(command)
        channel.shutdown_write()
        pending = {"stdout": b"", "stderr": b""}
        tail: list[str] = []
        events: list[Event] = []
        result = RemoteResult(exit_code=None, duration=0.0, host=self.host)
        seen_pid = False

        def emit(stream: str, raw: bytes) -> bool:
            nonlocal seen_pid
            line = raw.decode("utf-8", errors="replace").rstrip("\r")
            if stream == "stdout" and not seen_pid:
                seen_pid = True
                if line.startswith(_PID_MARKER):
                    result.pid = pid_box[0] = int(line[len(_PID_MARKER):])
                    self._running.add(result.pid)
                    return False
            tail.append(f"{line}" if stream == "stdout" else f"[{stream}] {line}")
            del tail[:-tail_lines]
            try:
                if on_line is not None:
                    on_line(stream, line)
                for event in monitor.feed(line, stream) if monitor else ():
                    events.append(event)
                    if event.action == "abort" and not result.aborted:
                        result.aborted = f"{event.pattern}: {line}"
                    if on_event is not None:
                        on_event(event)
            except Exception as exc:
                raise _CallbackFailed() from exc
            return bool(result.aborted)

        def pump(stream: str, data: bytes) -> bool:
            pending[stream] += data
            *lines, pending[stream] = pending[stream].split(b"\n")
            return any(emit(stream, raw) for raw in lines)

        try:
            stop = False
            while not stop:
                got = False
                if channel.recv_ready():
                    stop = pump("stdout", channel.recv(65536)) or stop
                    got = True
                if channel.recv_stderr_ready():
                    stop = pump("stderr", channel.recv_stderr(65536)) or stop
                    got = True
                if stop:
                    break
                if timeout is not None and self._clock() - started > timeout:
                    result.timed_out = True
                    break
                # sshd may send the exit status before the last output; EOF (or close) follows it.
                finished = channel.closed or (channel.eof_received and channel.exit_status_ready())
                if finished and not channel.recv_ready() and not channel.recv_stderr_ready():
                    transport = channel.get_transport()
                    if channel.exit_status < 0 and not (transport and transport.is_active()):
                        raise _Dropped("the channel closed without an exit status")
                    break
                if not got:
                    # stdout wakes select(); stderr does not (paramiko), so the poll bounds its delay.
                    select.select([channel], [], [], self.poll_interval)
            for stream in ("stdout", "stderr"):
                if pending[stream] and not result.aborted:
                    emit(stream, pending[stream])
        except _DROPS as exc:
            raise _Dropped(str(exc)) from exc
        except _CallbackFailed:
            if result.pid is not None:
                self._kill_group(result.pid)  # the caller cannot follow it any more: stop it
            channel.close()
            raise
        if result.aborted or result.timed_out:
            result.dirty = bool(result.aborted)
            if result.pid is not None:
                self._kill_group(result.pid)
        elif channel.exit_status >= 0:
            result.exit_code = channel.exit_status
            self._running.discard(result.pid or 0)  # it ended by itself
        channel.close()
        result.duration = self._clock() - started
        result.tail = "\n".join(tail)
        result.events = events
        return result

    def _kill_group(self, pid: int) -> None:
        """TERM the remote process group, KILL it after ``kill_grace`` s; best effort."""
        steps = max(1, int(self.kill_grace / 0.05))
        group = int(pid)
        # "kill -0" counts zombies (which linger until reaped), so ask ps for live members; without
        # ps the loop ends at once and KILL follows. No "--" before -N: dash's kill rejects it.
        alive = f"ps -A -o pgid= -o stat= 2>/dev/null | awk '$1 == {group} && $2 !~ /^Z/ {{f = 1}} END {{exit !f}}'"
        # After KILL, wait a moment too: the signal is asynchronous, and "stopped" must mean stopped.
        script = (f"kill -TERM -{group} 2>/dev/null; i=0; "
                  f"while {alive} && [ $i -lt {steps} ]; do sleep 0.05; i=$((i+1)); done; "
                  f"kill -KILL -{group} 2>/dev/null; i=0; "
                  f"while {alive} && [ $i -lt 20 ]; do sleep 0.05; i=$((i+1)); done; true")
        try:
            channel = self._session()
            channel.exec_command(script)
            channel.status_event.wait(self.kill_grace + self.connect_timeout)
            channel.close()
            self._running.discard(group)
        except (_Dropped, TestpilotError, *_DROPS) as exc:
            log.warning("could not stop process group %s on %s: %s", pid, self.host, exc)

    def _session(self) -> paramiko.Channel:
        """A channel on the open link; a fenced host only uses a link it still has (fence opened it)."""
        transport = self._client.get_transport() if self._client else None
        if transport is None or not transport.is_active():
            transport = self._transport()
        return transport.open_session(timeout=self.connect_timeout)

    def check(self, argv: Sequence[str], *, timeout: float | None = 60.0, phase: str = "check") -> RemoteResult:
        """Run a short command without streaming; the tail holds its output."""
        return self.run(argv, timeout=timeout, phase=phase)

    # ------------------------------------------------------------------ files
    def upload_dir(self, local: Path | str, remote: str, *, exclude: Iterable[str] = DEFAULT_UPLOAD_EXCLUDES,
                   phase: str = "install") -> int:
        """Copy the folder ``local`` to ``remote`` (created if needed) over SFTP; returns files sent."""
        local = Path(local)
        if not local.is_dir():
            raise ConfigError(f"{local} is not a folder", field="apps", hint="point the app at its source folder")
        patterns = tuple(exclude)

        def upload(_: int) -> int:
            with self._sftp() as sftp:
                return upload_tree(sftp, local, remote, patterns)

        return self._with_reconnect(f"upload of {local}", phase, upload)

    def upload_file(self, local: Path | str, remote_path: str, *, phase: str = "install") -> None:
        """Copy one file to ``remote_path`` (its folder is made if missing), keeping its mode."""
        local = Path(local)

        def upload(_: int) -> None:
            with self._sftp() as sftp:
                put_file(sftp, local, remote_path)

        self._with_reconnect(f"upload of {local.name}", phase, upload)

    def download(self, remote_path: str, local_path: Path | str, *, phase: str = "report") -> bool:
        """Fetch one file; False (and nothing written) when it does not exist on the host."""
        local_path = Path(local_path)

        def fetch(_: int) -> bool:
            with self._sftp() as sftp:
                return fetch_file(sftp, remote_path, local_path)

        return self._with_reconnect(f"download of {remote_path}", phase, fetch)

    def _sftp(self) -> paramiko.SFTPClient:
        sftp = paramiko.SFTPClient.from_transport(self._transport())
        if sftp is None:
            raise _Dropped("SFTP subsystem did not start")
        return sftp


def fence_hosts(host: str, port: int, *, owner: str = "", why: str) -> int:
    """Fence every RemoteHost of this process that works on ``host:port`` (for ``owner``'s run, or for no
    run in particular): stop its commands and forbid reconnects. Returns the process groups stopped."""
    with _hosts_lock:
        hosts = [h for h in _hosts if h.host == host and h.port == port and h.owner in ("", owner)]
    return sum(h.fence(why) for h in hosts)

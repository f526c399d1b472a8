"""Remote execution figures against a real sshd VM (the test harness), medians of repeated runs.

    uv run python bench/ssh_remote.py

Compares RemoteHost (paramiko, one connection reused) with the naive way, one `ssh` CLI process
per command, and measures how soon an abort pattern stops a remote command.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testpilot.execution.monitor import StreamMonitor  # noqa: E402
from testpilot.execution.remote import RemoteHost  # noqa: E402
from tests.sim.sshd import SSHDFarm, generate_keypair, sshd_missing_reason  # noqa: E402

ROUNDS = 15
LINES = 20_000


def median_seconds(action, rounds: int = ROUNDS) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    missing = sshd_missing_reason()
    if missing:
        sys.exit(f"cannot benchmark: {missing}")
    key = generate_keypair()
    with SSHDFarm() as farm, tempfile.TemporaryDirectory() as scratch:
        vm = farm.create_vm("bench", authorized_keys=[key.public_openssh])
        key_file = key.write(Path(scratch) / "id")
        known = Path(scratch) / "known_hosts"
        known.write_text(vm.known_hosts_line + "\n")
        ssh_cli = ["ssh", "-i", str(key_file), "-o", f"UserKnownHostsFile={known}", "-o", "BatchMode=yes",
                   "-o", "StrictHostKeyChecking=yes", "-p", str(vm.port), f"{vm.user}@{vm.address}"]

        def remote() -> RemoteHost:
            return RemoteHost(vm.address, vm.port, vm.user, host_key=vm.host_key, private_key=key.private_openssh)

        naive_cmd = median_seconds(lambda: subprocess.run([*ssh_cli, "true"], check=True))  # noqa: S603
        def fresh() -> None:
            with remote() as host:
                host.run(["true"])

        fresh_cmd = median_seconds(fresh)
        with remote() as shared:
            reused_cmd = median_seconds(lambda: shared.run(["true"]))

            script = f"seq 1 {LINES}"
            stream = median_seconds(lambda: _count(shared, ["sh", "-c", script]), rounds=5)

            def naive_stream() -> None:
                with subprocess.Popen([*ssh_cli, script], stdout=subprocess.PIPE, text=True) as proc:  # noqa: S603
                    assert proc.stdout is not None
                    assert sum(1 for _ in proc.stdout) == LINES

            naive_stream_s = median_seconds(naive_stream, rounds=5)

            latencies = []
            for _ in range(5):
                seen: list[float] = []

                def on_line(_stream: str, line: str, seen: list[float] = seen) -> None:
                    if "Kernel panic" in line:
                        seen.append(time.perf_counter())

                result = shared.run(["sh", "-c", "echo 'Kernel panic - not syncing'; sleep 30"], on_line=on_line,
                                    monitor=StreamMonitor(), timeout=60)
                assert result.aborted
                latencies.append(time.perf_counter() - seen[0])
        abort = statistics.median(latencies)

    print(f"command round trip, ssh CLI per command (naive): {naive_cmd * 1000:7.1f} ms")
    print(f"command round trip, RemoteHost new connection:   {fresh_cmd * 1000:7.1f} ms "
          f"({naive_cmd / fresh_cmd:.1f}x faster than naive)")
    print(f"command round trip, RemoteHost reused connection:{reused_cmd * 1000:7.1f} ms "
          f"({naive_cmd / reused_cmd:.1f}x faster than naive)")
    print(f"streaming {LINES} lines with on_line + monitor:   {stream * 1000:7.1f} ms "
          f"({LINES / stream:,.0f} lines/s; naive ssh | readline: {naive_stream_s * 1000:.1f} ms, "
          f"ratio {stream / naive_stream_s:.2f})")
    print(f"abort latency, 'Kernel panic' line -> command stopped and run returned: {abort * 1000:.0f} ms "
          f"(target < 2000 ms)")


def _count(remote: RemoteHost, argv: list[str]) -> int:
    lines = 0
    monitor = StreamMonitor()

    def on_line(_stream: str, _line: str) -> None:
        nonlocal lines
        lines += 1

    remote.run(argv, on_line=on_line, monitor=monitor, timeout=120)
    assert lines == LINES, lines
    return lines


if __name__ == "__main__":
    main()

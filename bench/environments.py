"""Reset (rollback / rebuild / btrfs script) versus re-create (clone / create), against the simulators.

Simulated durations are the realistic ones (ProxmoxTimings.realistic, HetznerTimings.realistic)
times SCALE, so the run is short; ratios do not depend on SCALE. "Overhead" is an acquire's wall time
minus the time the simulated API itself needs (its tasks/actions back to back, plus guest boot
and per-request latency): what Testpilot adds (HTTP, TLS, polling granularity, SSH checks, Python).

    uv run python bench/environments.py [--scale 0.02] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testpilot.environments.base import AcquireRequest  # noqa: E402
from testpilot.environments.cloud import Backoff  # noqa: E402
from testpilot.environments.config import EnvironmentConfig  # noqa: E402
from testpilot.environments.hetzner import HetznerProvider, HetznerSettings  # noqa: E402
from testpilot.environments.proxmox import ProxmoxProvider, ProxmoxSettings  # noqa: E402
from tests.sim.hetzner import HetznerSim, HetznerTimings  # noqa: E402
from tests.sim.machines import FakeMachines  # noqa: E402
from tests.sim.proxmox import ProxmoxSim, ProxmoxTimings  # noqa: E402
from tests.sim.sshd import generate_keypair, sshd_missing_reason  # noqa: E402

REQUEST_LATENCY = 0.05  # seconds per API call on a real network, scaled like everything else


def machines() -> Any:
    if sshd_missing_reason() is None:
        from tests.sim.sshd_machines import SshdMachines
        return SshdMachines()
    print("(sshd missing: VMs are in-memory fakes)")
    return FakeMachines()


def request(run: str) -> AcquireRequest:
    return AcquireRequest(pool="bench", slot=0, run_id=run, config=EnvironmentConfig(provider="proxmox"))


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def proxmox_api_time(sim: ProxmoxSim, tasks_before: int, requests_before: int) -> float:
    new = list(sim.tasks.values())[tasks_before:]
    boots = sum(1 for t in new if t.type == "qmstart") * sim.timings.agent_boot
    return sum(t.duration for t in new) + boots + (len(sim.requests) - requests_before) * sim.server.latency


def hetzner_api_time(sim: HetznerSim, actions_before: int, requests_before: int) -> float:
    durations = {"create_server": sim.timings.create_server, "start_server": sim.timings.start_server,
                 "stop_server": sim.timings.stop_server, "reboot_server": sim.timings.reboot_server,
                 "rebuild_server": sim.timings.rebuild_server, "create_image": sim.timings.create_image,
                 "delete_server": sim.timings.delete_server}
    new = list(sim.actions.values())[actions_before:]
    return sum(durations.get(a["command"], 0.0) for a in new) + (len(sim.requests) - requests_before) * sim.server.latency


def bench_proxmox(scale: float, rounds: int, full: bool) -> dict[str, float]:
    key = generate_keypair("bench")
    with ProxmoxSim(machines=machines(), timings=ProxmoxTimings.realistic(scale),
                    latency=REQUEST_LATENCY * scale) as sim:
        os.environ["REQUESTS_CA_BUNDLE"] = str(sim.tls.ca_bundle)
        settings = ProxmoxSettings(host=sim.host, token_name="testpilot", token_value="00000000-sim0-token",
                                   template_vmid=9000, ssh_public_keys=[key.public_openssh], full_clone=full)
        provider = ProxmoxProvider(settings, backoff=Backoff(0.5 * scale, 1.5, 5 * scale))
        env = provider.acquire(request("warm"))
        resets, creates, overheads, api_reset, api_create = [], [], [], [], []
        for n in range(rounds):
            provider.release(env)
            t0, r0 = len(sim.tasks), len(sim.requests)
            resets.append(timed(provider.acquire, request(f"r{n}"))[0])
            api_reset.append(proxmox_api_time(sim, t0, r0))
            overheads.append(resets[-1] - api_reset[-1])
            provider.destroy(env)
            t0, r0 = len(sim.tasks), len(sim.requests)
            seconds, env = timed(provider.acquire, request(f"c{n}"))
            creates.append(seconds)
            api_create.append(proxmox_api_time(sim, t0, r0))
            overheads.append(creates[-1] - api_create[-1])
        provider.destroy(env)
    return {"reset": statistics.median(resets), "create": statistics.median(creates),
            "overhead": statistics.median(overheads), "api_reset": statistics.median(api_reset),
            "api_create": statistics.median(api_create)}


def bench_hetzner(scale: float, rounds: int, mode: str) -> dict[str, float]:
    key = generate_keypair("bench")
    key_file = Path(tempfile.mkdtemp()) / "id"
    key.write(key_file)
    with HetznerSim(machines=machines(), timings=HetznerTimings.realistic(scale),
                    latency=REQUEST_LATENCY * scale) as sim:
        extra = {} if mode == "rebuild" else {
            "reset": "script", "baseline_script": "mkdir -p .sim && echo b > .sim/btrfs-snapshot-on-boot",
            "reset_script": "mkdir -p .sim && echo b > .sim/btrfs-rollback-on-boot"}
        settings = HetznerSettings(token="sim-token", api_endpoint=sim.url, ssh_public_key=key.public_openssh,
                                   ssh_key_file=str(key_file), ssh_user="testuser", **extra)
        provider = HetznerProvider(settings, backoff=Backoff(0.5 * scale, 1.5, 5 * scale))
        env = provider.acquire(request("warm"))
        resets, creates, overheads, api_reset, api_create = [], [], [], [], []
        for n in range(rounds):
            provider.release(env)
            a0, r0 = len(sim.actions), len(sim.requests)
            resets.append(timed(provider.acquire, request(f"r{n}"))[0])
            api_reset.append(hetzner_api_time(sim, a0, r0))
            overheads.append(resets[-1] - api_reset[-1])
            provider.destroy(env)
            a0, r0 = len(sim.actions), len(sim.requests)
            seconds, env = timed(provider.acquire, request(f"c{n}"))
            creates.append(seconds)
            api_create.append(hetzner_api_time(sim, a0, r0))
            overheads.append(creates[-1] - api_create[-1])
        provider.destroy(env)
    return {"reset": statistics.median(resets), "create": statistics.median(creates),
            "overhead": statistics.median(overheads), "api_reset": statistics.median(api_reset),
            "api_create": statistics.median(api_create)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.02)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rows = [
        ("proxmox linked clone", "rollback (RAM)", bench_proxmox(args.scale, args.rounds, full=False)),
        ("proxmox full clone", "rollback (RAM)", bench_proxmox(args.scale, args.rounds, full=True)),
        ("hetzner create", "rebuild", bench_hetzner(args.scale, args.rounds, "rebuild")),
        ("hetzner create", "btrfs script+reboot", bench_hetzner(args.scale, args.rounds, "script")),
    ]
    print(f"scale={args.scale} rounds={args.rounds}; medians. 'real' = simulated API time / scale + overhead,")
    print("i.e. the expected wall time on real infrastructure; the ratio is re-create / reset on that basis.")
    print(f"{'re-create (naive)':22} {'reset':20} {'create s':>8} {'reset s':>8} {'real create s':>13} "
          f"{'real reset s':>12} {'ratio':>6} {'overhead s':>10}")
    for create_name, reset_name, r in rows:
        real_create = r["api_create"] / args.scale + r["overhead"]
        real_reset = r["api_reset"] / args.scale + r["overhead"]
        print(f"{create_name:22} {reset_name:20} {r['create']:8.3f} {r['reset']:8.3f} {real_create:13.1f} "
              f"{real_reset:12.1f} {real_create / real_reset:5.1f}x {r['overhead']:10.3f}")


if __name__ == "__main__":
    main()

"""Run a simulator as a standalone process, for the demo and for trying Testpilot without real infrastructure."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from typing import Any


def serve(kind: str, argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m tests.sim.{kind}",
                                     description=f"Simulated {kind} API on loopback.")
    parser.add_argument("--port", type=int, default=8006 if kind == "proxmox" else 8080)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    parser.add_argument("--realistic", type=float, default=0.0, metavar="SCALE",
                        help="realistic task/action durations times SCALE (0 = instant)")
    parser.add_argument("--sshd", action="store_true", help="back every VM with a real sshd on 127.0.x.y")
    parser.add_argument("--state-dir", default=None, help="where certificates and VM homes go")
    args = parser.parse_args(argv)
    machines: Any = None
    if args.sshd:
        from tests.sim.sshd_machines import SshdMachines
        machines = SshdMachines(block=71 if kind == "proxmox" else 81)
    from pathlib import Path
    workdir = Path(args.state_dir) if args.state_dir else None
    info: dict[str, Any]
    if kind == "proxmox":
        from tests.sim.proxmox import ProxmoxSim, ProxmoxTimings
        timings = ProxmoxTimings.realistic(args.realistic) if args.realistic else None
        sim: Any = ProxmoxSim(machines=machines, port=args.port, latency=args.latency, timings=timings,
                              workdir=workdir)
        info = {"url": f"https://{sim.host}", "ca_bundle": str(sim.tls.ca_bundle), "users": list(sim.users),
                "tokens": list(sim.tokens), "templates": [v.vmid for v in sim._vms.values() if v.template],
                "hint": "set ca_bundle on the ProxmoxCluster block (or export REQUESTS_CA_BUNDLE); "
                        "passwords/tokens are in tests/sim/proxmox.py"}
    else:
        from tests.sim.hetzner import HetznerSim, HetznerTimings
        timings = HetznerTimings.realistic(args.realistic) if args.realistic else None
        sim = HetznerSim(machines=machines, port=args.port, latency=args.latency, timings=timings)
        info = {"api_endpoint": sim.url, "tokens": "any token listed in HetznerSim(tokens=...), default 'sim-token'",
                "images": [i["name"] for i in sim.images.values() if i.get("name")]}
    sim.start()
    print(json.dumps(info, indent=2), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()

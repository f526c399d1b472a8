"""Deploy a node deployment whose runs start as ONE process on a process worker of this machine.

    .venv/bin/python -m deployments.nodes [--name node-direct] [--pool testpilot-process]

A process worker starts a flow run whose deployment sets no ``command`` as Prefect's workspace
supervisor: a Python process that imports Prefect and prepares the run's folder, then replaces itself
with the flow-run engine, which starts Python and imports Prefect again (about 2 s of CPU each here).
Nodes are short flow runs, many at once, so this deploys the node flow (``prefect.yaml``'s ``node``
entry) under ``--name`` with ``command`` set to this interpreter running ``prefect.engine`` directly:
the worker starts the engine itself, which runs the deployment's pull step and the flow
(docs/operations.md, "One process per node"; docs/benchmarks.md has the figures).

The command holds this interpreter's absolute path, so every worker that serves the pool needs the
same path (one machine, or checkouts at the same place). Point a suite at it with
``node_deployment: testpilot-node/<name>``. ``node_variant`` is what bench/scale_workers.py uses.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent


def engine_command(python: str = sys.executable) -> str:
    """The flow-run command of a process worker that skips the workspace supervisor."""
    return f"{shlex.quote(python)} -m prefect.engine"


def node_variant(name: str, pool: str | None = None, job_variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """prefect.yaml with only the ``node`` deployment, renamed, on ``pool``, with more job variables."""
    config = yaml.safe_load((REPO / "prefect.yaml").read_text())
    [node] = [d for d in config["deployments"] if d["name"] == "node"]
    work_pool = dict(node["work_pool"])
    work_pool["job_variables"] = {**work_pool.get("job_variables", {}), **(job_variables or {})}
    if pool:
        work_pool["name"] = pool
    node.update(name=name, work_pool=work_pool)
    config["deployments"] = [node]
    return dict(config)


def deploy(name: str, pool: str | None = None, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    """``prefect deploy`` of the direct-command node deployment, from this checkout."""
    config = node_variant(name, pool, {"command": engine_command(python)})
    with tempfile.TemporaryDirectory(prefix="testpilot-node-deploy-") as folder:
        path = Path(folder) / "prefect.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all",
                               "--prefect-file", str(path)], cwd=REPO, capture_output=True, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="node-direct", help="deployment name (default node-direct)")
    parser.add_argument("--pool", default=None, help="work pool (default: the node deployment's, testpilot-process)")
    args = parser.parse_args()
    done = deploy(args.name, args.pool)
    if done.returncode != 0:
        sys.exit(f"prefect deploy failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    print(f"deployed testpilot-node/{args.name}: nodes start as `{engine_command()}`; "
          f"set node_deployment: testpilot-node/{args.name} in the suite")


if __name__ == "__main__":
    main()

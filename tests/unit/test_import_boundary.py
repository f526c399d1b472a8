import subprocess
import sys

from tests.conftest import REPO


def test_importing_testpilot_does_not_import_prefect():
    code = ("import pkgutil, sys, testpilot\n"
            "for m in pkgutil.walk_packages(testpilot.__path__, 'testpilot.'):\n"
            "    __import__(m.name)\n"
            "bad = sorted(n for n in sys.modules if n == 'prefect' or n.startswith('prefect.'))\n"
            "print(len(list(pkgutil.walk_packages(testpilot.__path__))), bad[:3])\n"
            "sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def task_lengths() -> dict[str, int]:
    """Every Prefect task in tasks/ (a function decorated with ``task`` or ``task(...)``) and its length in lines."""
    import ast

    found: dict[str, int] = {}
    for path in sorted((REPO / "tasks").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                    (d.func if isinstance(d, ast.Call) else d).__dict__.get("id") == "task"
                    for d in node.decorator_list):
                found[f"{path.name}:{node.name}"] = (node.end_lineno or node.lineno) - node.lineno + 1
    return found


def test_tasks_are_thin_wrappers_of_at_most_25_lines():
    lengths = task_lengths()
    assert len(lengths) >= 20 and "execution.py:run_shard" in lengths  # the scan finds the tasks
    assert {name: n for name, n in lengths.items() if n > 25} == {}


def test_a_node_flow_run_starts_without_the_test_data_stack():
    """Every node of a work-pool run is a new process: it loads Faker, psycopg and the loaders only when
    its suite seeds data (each node pays the import time, several at once on one machine)."""
    code = ("import sys, flows.nodes\n"
            "bad = sorted({n.split('.')[0] for n in sys.modules} & {'faker', 'psycopg', 'pymysql'})\n"
            "print(bad)\n"
            "sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr

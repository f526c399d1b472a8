"""The standalone plugin, copied as testpilot_pytest.py and loaded with -p, in a real pytest subprocess."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from testpilot.scenarios.dataflow import (
    PLUGIN_MODULE,
    install_plugin,
    plugin_source,
    read_outputs,
    step_environment,
    write_inputs,
)

STEP_TESTS = '''
import pytest

def test_login(testpilot_inputs, testpilot_outputs):
    testpilot_outputs["token"] = "tok-" + testpilot_inputs.get("user", "nobody")
    testpilot_outputs["n"] = len(testpilot_inputs)

@pytest.mark.depends_on("test_step.py::test_login")
def test_pay(testpilot_inputs, testpilot_outputs):
    testpilot_outputs["payment_id"] = 42
    assert testpilot_inputs.get("fail") is not True
'''


def _pytest(folder: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("TESTPILOT_")}
    full.update(env, PYTHONPATH=str(folder / "_tp"), PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    return subprocess.run([sys.executable, "-m", "pytest", "-p", PLUGIN_MODULE, "--strict-markers", "-q",  # noqa: S603
                           "-p", "no:cacheprovider", *args], cwd=folder, env=full, capture_output=True, text=True,
                          timeout=120, check=False)


def test_plugin_imports_nothing_from_testpilot() -> None:
    tree = ast.parse(plugin_source())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    # testpilot_recorder is the recorder staged beside it; ``from testpilot import recorder`` is its fallback
    # inside this repository. The recorder itself is stdlib only.
    assert modules <= {"__future__", "json", "os", "tempfile", "typing", "collections", "pytest", "gzip", "sys",
                       "time", "testpilot_recorder", "testpilot"}, modules
    from_testpilot = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                      and (n.module or "").startswith("testpilot") for a in n.names}
    assert from_testpilot <= {("testpilot", "recorder")}, from_testpilot
    recorder = ast.parse((Path(__file__).resolve().parents[2] / "testpilot" / "recorder.py").read_text())
    used = {a.name.split(".")[0] for n in ast.walk(recorder) if isinstance(n, ast.Import) for a in n.names}
    used |= {n.module.split(".")[0] for n in ast.walk(recorder) if isinstance(n, ast.ImportFrom) and n.module}
    assert used <= set(sys.stdlib_module_names) | {"__future__"}, used


def test_inputs_outputs_and_marker_in_a_real_pytest_run(tmp_path: Path) -> None:
    (tmp_path / "_tp").mkdir()
    install_plugin(tmp_path / "_tp")
    (tmp_path / "test_step.py").write_text(STEP_TESTS)
    inputs, outputs = tmp_path / "in.json", tmp_path / "out.json"
    write_inputs(inputs, {"user": "ada", "fail": True})
    env = step_environment({"user": "ada", "fail": True}, str(inputs), str(outputs))
    assert env["TESTPILOT_INPUT_USER"] == "ada" and env["TESTPILOT_INPUT_FAIL"] == "true"

    proc = _pytest(tmp_path, "test_step.py", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # test_pay fails on purpose; markers are declared
    assert "1 failed, 1 passed" in proc.stdout
    # outputs of both tests are written, even the failing one, as one JSON object
    assert read_outputs(outputs) == {"token": "tok-ada", "n": 2, "payment_id": 42}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".testpilot-outputs-")]

    marker_help = _pytest(tmp_path, "--markers", env={})
    assert "@pytest.mark.depends_on(*node_ids)" in marker_help.stdout


def test_without_environment_inputs_are_empty_and_nothing_is_written(tmp_path: Path) -> None:
    (tmp_path / "_tp").mkdir()
    install_plugin(tmp_path / "_tp")
    (tmp_path / "test_step.py").write_text(STEP_TESTS)
    proc = _pytest(tmp_path, "test_step.py", env={})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_tp", "test_step.py"]


def test_unserialisable_output_and_bad_inputs_file_are_reported(tmp_path: Path) -> None:
    (tmp_path / "_tp").mkdir()
    install_plugin(tmp_path / "_tp")
    (tmp_path / "test_bad.py").write_text(
        "def test_obj(testpilot_outputs):\n    testpilot_outputs['when'] = object()\n")
    out = tmp_path / "out.json"
    proc = _pytest(tmp_path, "test_bad.py", env={"TESTPILOT_OUTPUTS": str(out)})
    assert proc.returncode == 1 and "testpilot output 'when' of test_bad.py::test_obj has type object" in proc.stdout
    assert not out.exists()

    (tmp_path / "bad.json").write_text("[1, 2]")
    (tmp_path / "test_in.py").write_text("def test_in(testpilot_inputs):\n    pass\n")
    proc = _pytest(tmp_path, "test_in.py", env={"TESTPILOT_INPUTS": str(tmp_path / "bad.json")})
    assert proc.returncode != 0 and "must hold a JSON object" in proc.stdout + proc.stderr


def test_read_outputs_contract(tmp_path: Path) -> None:
    import pytest

    from testpilot.scenarios.dataflow import StepOutputError

    assert read_outputs(tmp_path / "missing.json") == {}
    (tmp_path / "empty.json").write_text("")
    assert read_outputs(tmp_path / "empty.json") == {}
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(StepOutputError, match="is not JSON"):
        read_outputs(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text(json.dumps([1]))
    with pytest.raises(StepOutputError, match="holds a list"):
        read_outputs(tmp_path / "list.json")

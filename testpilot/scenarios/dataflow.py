"""The data flow contract between Testpilot and a step's process.

A step gets its inputs as a JSON object in the file named by ``TESTPILOT_INPUTS`` (and, for commands,
as ``TESTPILOT_INPUT_<NAME>`` variables) and publishes outputs as a JSON object in the file named by
``TESTPILOT_OUTPUTS``. Pytest steps use the plugin's fixtures for both; see docs/graph.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testpilot.errors import TestpilotError

INPUTS_ENV = "TESTPILOT_INPUTS"
OUTPUTS_ENV = "TESTPILOT_OUTPUTS"
INPUT_VAR_PREFIX = "TESTPILOT_INPUT_"
PLUGIN_MODULE = "testpilot_pytest"
PLUGIN_FILE = PLUGIN_MODULE + ".py"


class StepOutputError(TestpilotError):
    """A step's outputs file exists but is not a JSON object."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message, hint="write one JSON object, e.g. {\"token\": \"abc\"}", path=path)
        self.path = path


def plugin_source() -> str:
    """Text of the standalone pytest plugin, to be written as PLUGIN_FILE next to a step's tests."""
    return (Path(__file__).resolve().parent.parent / "pytest_plugin.py").read_text(encoding="utf-8")


def install_plugin(folder: str | Path) -> Path:
    """Write the plugin into ``folder`` (put it on PYTHONPATH and run ``pytest -p testpilot_pytest``)."""
    target = Path(folder) / PLUGIN_FILE
    target.write_text(plugin_source(), encoding="utf-8")
    return target


def _var_name(name: str) -> str:
    return INPUT_VAR_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def _var_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)  # true/false, numbers, and JSON for lists and dicts


def step_environment(inputs: Mapping[str, Any], inputs_file: str, outputs_file: str) -> dict[str, str]:
    """Environment variables for a step's process: the two file paths and one variable per input."""
    env = {INPUTS_ENV: inputs_file, OUTPUTS_ENV: outputs_file}
    env.update({_var_name(k): _var_value(v) for k, v in inputs.items()})
    return env


def write_inputs(path: str | Path, inputs: Mapping[str, Any]) -> None:
    Path(path).write_text(json.dumps(dict(inputs)), encoding="utf-8")


def read_outputs(path: str | Path) -> dict[str, Any]:
    """The outputs a step published; {} when it wrote none. Raises StepOutputError when malformed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StepOutputError(f"outputs file {path} is not JSON: {exc}", path=str(path)) from None
    if not isinstance(data, dict):
        raise StepOutputError(f"outputs file {path} holds a {type(data).__name__}, not an object",
                              path=str(path))
    return data

"""The example suite in examples/: it validates, its apps' tests are real and pass, and the demo change
breaks exactly the one test it says it breaks."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from testpilot.suite import Suite, load_suite

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _pytest(app_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The example apps read these; a developer's shell must not change what the checks see.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TESTPILOT_") and k not in ("USER_SERVICE_URL", "PAYMENT_SERVICE_URL", "PYTHONPATH")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],  # noqa: S603 (fixed argv)
                          cwd=app_dir, env=env, capture_output=True, text=True, timeout=120)


def _junit(path: Path) -> dict[str, str]:
    """node id -> outcome ('passed', 'failed', 'error', 'skipped') from a JUnit XML file."""
    outcomes = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        node = case.get("classname", "").replace(".", "/") + ".py::" + case.get("name", "")
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[node] = kinds[0] if kinds else "passed"
    return outcomes


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite(EXAMPLES / "testpilot.yaml")


@pytest.fixture(scope="module")
def demo_change():
    spec = importlib.util.spec_from_file_location("demo_change", EXAMPLES / "demo_change.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_suite_file_validates_and_uses_every_section(suite):
    assert set(Suite.model_fields) - {"name"} <= suite.model_fields_set
    assert suite.apps["web-frontend"].depends_on == ["payment-service", "user-service"]
    assert suite.environments["integration"].services["payment-db"].type == "postgres"
    assert suite.data["payment_methods"].fields["user_id"] == "ref:users.id"
    assert suite.failures.routing == {"database_connection": "database-team", "authentication": "security-team"}
    assert all(app.owners and app.test_command == "pytest {tests}" for app in suite.apps.values())


def test_payment_modules_map_to_existing_test_files(suite):
    rule = suite.selection["payment-service"].mapping_rules[0]
    app_dir = suite.app_dir("payment-service")
    modules = sorted(p for p in (app_dir / "src/payment").glob("*.py") if p.name != "__init__.py")
    assert len(modules) >= 5
    for module in modules:
        match = re.fullmatch(rule.source_pattern, module.relative_to(app_dir).as_posix())
        assert match, module
        assert (app_dir / str(rule.test_pattern).replace("{1}", match.group(1))).is_file(), module


def test_example_apps_have_at_least_60_tests_and_the_scenario_steps(suite):
    total = 0
    for name in suite.apps:
        result = _pytest(suite.app_dir(name), "--collect-only", "-q")
        assert result.returncode == 0, result.stdout + result.stderr
        ids = {line for line in result.stdout.splitlines() if "::" in line}
        total += len(ids)
        for scenario in suite.scenarios.values():
            for step in scenario.steps:
                if step.app == name:
                    assert step.test in ids, f"{name}: scenario step {step.test} is not collected"
    assert total >= 60


def test_demo_change_breaks_exactly_the_named_test(tmp_path, demo_change):
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    app_dir = copy / "apps/payment"
    before = _pytest(app_dir, f"--junitxml={tmp_path / 'before.xml'}", "tests/")
    assert before.returncode == 0, before.stdout

    applied = subprocess.run([sys.executable, "demo_change.py", str(copy)], cwd=copy,  # noqa: S603 (fixed argv)
                             capture_output=True, text=True, timeout=30)
    assert applied.returncode == 0, applied.stderr
    after = _pytest(app_dir, f"--junitxml={tmp_path / 'after.xml'}", "tests/")

    outcomes = _junit(tmp_path / "after.xml")
    failed = [node for node, outcome in outcomes.items() if outcome in ("failure", "error")]
    assert failed == [demo_change.BROKEN_TEST]
    assert "AssertionError" in after.stdout
    assert outcomes.keys() == _junit(tmp_path / "before.xml").keys()
    assert _changed_files(EXAMPLES, copy) == [demo_change.CHANGED_FILE]


def _changed_files(original: Path, copy: Path) -> list[str]:
    def sources(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and not {"__pycache__", ".pytest_cache"} & set(p.parts)}

    before, after = sources(original), sources(copy)
    return sorted(set(before) ^ set(after) | {name for name in before.keys() & after.keys()
                                              if before[name] != after[name]})

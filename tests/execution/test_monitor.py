"""The stream monitor and phase tracker: pure, no SSH."""

from __future__ import annotations

import pytest

from testpilot.errors import ConfigError
from testpilot.execution.monitor import (
    MonitorConfig,
    MonitorPattern,
    PhaseTracker,
    StreamMonitor,
    patterns_from_settings,
)
from testpilot.execution.remote import remote_command


def test_default_patterns_classify_lines() -> None:
    monitor = StreamMonitor()
    assert monitor.feed("collected 3 items") == []
    [warn] = monitor.feed("psycopg.OperationalError: Connection refused", "stderr")
    assert (warn.action, warn.pattern, warn.stream) == ("warn", "connection_refused", "stderr")
    [progress] = monitor.feed("tests/test_a.py ....                    [ 40%]")
    assert progress.action == "progress" and progress.percent == 40.0
    assert monitor.aborted is None
    [panic] = monitor.feed("[   12.3] Kernel panic - not syncing: VFS: Unable to mount root fs", "stderr")
    assert panic.action == "abort" and monitor.aborted == panic
    [oom] = monitor.feed("Out of memory: Killed process 1234 (python)")
    assert oom.pattern == "oom" and monitor.aborted == panic  # the first abort is kept


def test_custom_patterns_come_first_and_respect_stream_and_case() -> None:
    config = MonitorConfig(patterns=[
        MonitorPattern(name="segfault", regex=r"segmentation fault", action="abort", ignore_case=True,
                       stream="stderr"),
        MonitorPattern(name="step", regex=r"step (?P<done>\d+)/(?P<total>\d+): (?P<message>.*)",
                       action="progress"),
    ])
    monitor = StreamMonitor.from_config(config)
    assert monitor.feed("Segmentation fault (core dumped)", "stdout") == []
    assert [e.pattern for e in monitor.feed("Segmentation fault (core dumped)", "stderr")] == ["segfault"]
    [step] = monitor.feed("step 3/4: migrating")
    assert step.percent == 75.0 and step.message == "migrating"
    assert [p.name for p in MonitorConfig(use_defaults=False).effective_patterns()] == []


def test_one_line_can_raise_several_events_in_pattern_order() -> None:
    monitor = StreamMonitor([MonitorPattern(name="a", regex="x", action="warn"),
                             MonitorPattern(name="b", regex="x+", action="abort")])
    assert [(e.pattern, e.action) for e in monitor.feed("xx")] == [("a", "warn"), ("b", "abort")]


def test_bad_patterns_are_config_errors_naming_the_entry() -> None:
    with pytest.raises(ConfigError) as caught:
        patterns_from_settings([{"name": "ok", "regex": "a", "action": "warn"},
                                {"name": "bad", "regex": "(", "action": "abort"}], file="suite.yaml")
    assert caught.value.field == "monitor[1]" and "regular expression" in str(caught.value)
    with pytest.raises(ConfigError):
        patterns_from_settings([{"name": "x", "regex": "a", "action": "explode"}])


def test_phase_tracker_records_seed_phases_with_injected_time() -> None:
    phases = PhaseTracker()
    assert [r.status for r in phases.records] == ["pending"] * 5
    phases.start("provision", now=0.0)
    phases.start("install", now=2.0)  # finishes provision as passed
    phases.finish("install", now=5.0)
    phases.skip("reboot", "not needed")
    phases.start("test", now=6.0, detail="shard 1/2")
    failed = phases.fail_current(now=9.5, detail="aborted: kernel_panic")
    assert failed is not None and failed.duration == 3.5
    rows = {row["phase"]: row for row in phases.table()}
    assert rows["provision"] == {"phase": "provision", "status": "passed", "seconds": "2.0", "detail": ""}
    assert rows["reboot"]["status"] == "skipped" and rows["test"]["status"] == "failed"
    assert rows["report"]["status"] == "pending" and phases.current is None
    assert "| test | failed | 3.5 | aborted: kernel_panic |" in phases.markdown()
    with pytest.raises(ValueError):
        phases.finish("report", now=10.0)
    phases.start("custom", now=10.0)
    assert phases.records[-1].name == "custom"


def test_remote_command_quotes_everything() -> None:
    text = remote_command(["pytest", "tests/a.py::t[$(id)]", "x;y"], cwd="my dir", env={"A": "1 2"})
    assert text == ("cd 'my dir' && printf 'testpilot-pid:%s\\n' \"$$\" && "
                    "exec env 'A=1 2' pytest 'tests/a.py::t[$(id)]' 'x;y'")
    with pytest.raises(ConfigError):
        remote_command([])

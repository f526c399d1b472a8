import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import pytest

from testpilot.execution.schedule import Decision, run_dag

DEPS = {"a": [], "b": ["a"], "c": ["b"], "x": [], "y": ["x"], "d": ["a", "x"]}


def runner(fail=(), delay=0.05, max_parallel=4, fail_fast=False, deps=DEPS):
    pool = ThreadPoolExecutor(8)
    active, peak, lock, started = [0], [0], threading.Lock(), []

    def work(node):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(delay)
        with lock:
            active[0] -= 1
        return ("Failed", f"{node} broke") if node in fail else ("Completed", "")

    def start(node, decision: Decision) -> Future:
        if decision.action != "run":
            done: Future = Future()
            done.set_result(("Skipped", decision.reason))
            return done
        started.append(node)
        return pool.submit(work, node)

    out = run_dag(deps, start, lambda fs: next(iter(wait(fs, return_when=FIRST_COMPLETED).done)),
                  lambda f: f.result(), max_parallel=max_parallel, fail_fast=fail_fast)
    pool.shutdown()
    return out, started, peak[0]


def test_all_pass_and_order_respected():
    out, started, _ = runner()
    assert set(out.states.values()) == {"Completed"}
    assert started.index("a") < started.index("b") < started.index("c")
    assert started.index("x") < started.index("d")


def test_failure_skips_dependents_only_and_names_the_root():
    out, started, _ = runner(fail={"a"})
    assert out.states["a"] == "Failed"
    assert (out.states["b"], out.reasons["b"]) == ("Skipped", "dependency a failed")
    assert (out.states["c"], out.reasons["c"]) == ("Skipped", "dependency a failed")
    assert out.states["d"] == "Skipped"
    assert out.states["x"] == out.states["y"] == "Completed"
    assert "b" not in started and "c" not in started


def test_fail_fast_cancels_what_is_still_pending():
    deps = {"a": [], "b": ["a"], "slow": [], "after_slow": ["slow"]}
    out, started, _ = runner(fail={"a"}, fail_fast=True, deps=deps, max_parallel=1)
    assert out.states["a"] == "Failed"
    assert out.states["after_slow"] == "Cancelled" or out.states["slow"] == "Cancelled"
    assert "fail_fast" in " ".join(out.reasons.values())


def test_parallelism_is_bounded():
    deps = {f"n{i}": [] for i in range(8)}
    _, _, peak = runner(deps=deps, max_parallel=2, delay=0.1)
    assert peak == 2


def test_unknown_dependency_is_rejected():
    with pytest.raises(ValueError, match="unknown"):
        runner(deps={"a": ["ghost"]})

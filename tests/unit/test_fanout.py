"""Fan-out within a run: which pool member each shard node goes to (pure, no Prefect)."""

from __future__ import annotations

import heapq

import pytest

from testpilot.execution.fanout import FanOut, lpt, node_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def simulate(durations: dict[str, float], members: list[str], parallel: int) -> tuple[dict[str, str], float]:
    """Run independent nodes through a FanOut the way the pipeline does (ready nodes started longest
    first, at most ``parallel`` at a time, each taking exactly its expected time); returns where each
    ran and when the last one ended."""
    clock = Clock()
    fan = FanOut({"p": members}, {n: ("p", d) for n, d in durations.items()}, clock=clock)
    waiting, running = fan.order(durations), list[tuple[float, str]]()
    while waiting or running:
        while waiting and len(running) < parallel:
            node = waiting.pop(0)
            fan.started(node)
            heapq.heappush(running, (clock.now + durations[node], node))
        clock.now, node = heapq.heappop(running)
        fan.finished(node)
    return fan.placed(), clock.now


def test_lpt_puts_the_longest_first_onto_the_least_loaded_member() -> None:
    plan = lpt({"a": 7, "b": 6, "c": 5, "d": 4, "e": 3, "f": 2}, 3)
    assert plan == {"a": 0, "b": 1, "c": 2, "d": 2, "e": 1, "f": 0}  # loads 9, 9, 9
    assert lpt({"a": 5, "b": 5}, 1) == {"a": 0, "b": 0}


def test_nodes_started_together_longest_first_follow_the_lpt_plan() -> None:
    durations = {"n1": 3.0, "n2": 9.0, "n3": 4.0, "n4": 8.0, "n5": 1.0, "n6": 6.0, "n7": 7.0}
    members = ["vm0", "vm1", "vm2"]
    fan = FanOut({"p": members}, {n: ("p", d) for n, d in durations.items()}, clock=Clock())
    assert fan.order(durations) == ["n2", "n4", "n7", "n6", "n3", "n1", "n5"]
    for node in fan.order(durations):
        fan.started(node)
    assert {n: members.index(m) for n, m in fan.placed().items()} == lpt(durations, 3)
    loads = fan.load("p")
    assert max(loads) - min(loads) <= min(durations.values()) + 1e-9  # they end together
    assert sorted(loads) == [12.0, 13.0, 13.0]


def test_four_members_end_together_and_a_freed_member_takes_the_next_node() -> None:
    durations = {f"s{i}": float(d) for i, d in enumerate([10, 9, 8, 7, 6, 5, 4, 3, 2, 1])}
    placed, makespan = simulate(durations, ["vm0", "vm1", "vm2", "vm3"], parallel=4)
    assert set(placed.values()) == {"vm0", "vm1", "vm2", "vm3"}
    assert makespan == 15.0  # total 55 over 4 = 13.75; one member alone would take 55
    assert placed["s4"] == "vm3"  # 6 s goes where 7 s ended first
    placed, alone = simulate(durations, ["vm0"], parallel=1)
    assert set(placed.values()) == {"vm0"} and alone == 55.0


def test_one_member_gets_every_node_as_before() -> None:
    fan = FanOut({"p": ["only"]}, {"a": ("p", 5.0), "b": ("p", 1.0)}, clock=Clock())
    assert [fan.started(n) for n in ("a", "b")] == ["only", "only"]
    assert fan.by_member(str) == {"only": ["a", "b"]}


def test_elapsed_time_and_finishing_lower_a_members_load() -> None:
    clock = Clock()
    fan = FanOut({"p": ["vm0", "vm1"]}, {"long": ("p", 10.0), "mid": ("p", 6.0), "next": ("p", 2.0)}, clock=clock)
    assert fan.started("long") == "vm0" and fan.started("mid") == "vm1"
    clock.now = 5.0
    assert fan.load("p") == [5.0, 1.0]
    assert fan.env_for("next") == "vm1"
    fan.finished("long")  # ended early: vm0 is idle now
    assert fan.load("p") == [0.0, 1.0] and fan.env_for("next") == "vm0"
    clock.now = 20.0
    assert fan.load("p") == [0.0, 0.0]  # an overrunning node does not count below zero


def test_pools_keep_their_own_members_and_unheld_ones_are_never_used() -> None:
    fan = FanOut({"vms": ["vm0", "vm1"], "db": ["box"]},
                 {"a[0]": ("vms", 3.0), "a[1]": ("vms", 3.0), "b[0]": ("db", 9.0), "c[0]": ("gone", 1.0)},
                 clock=Clock())
    assert [fan.started(n) for n in ("b[0]", "a[0]", "a[1]")] == ["box", "vm0", "vm1"]
    assert fan.env_for("a[0]") == "vm0"  # a started node stays where it started
    with pytest.raises(KeyError, match="holds no member of pool 'gone'"):
        fan.env_for("c[0]")
    assert fan.by_member(str) == {"vm0": ["a[0]"], "vm1": ["a[1]"], "box": ["b[0]"]}


def test_started_on_a_given_member_and_node_seconds_fill_unknown_with_the_median() -> None:
    fan = FanOut({"p": ["vm0", "vm1"]}, {"x": ("p", 1.0)}, clock=Clock())
    assert fan.started("x", "vm1") == "vm1" and fan.placed() == {"x": "vm1"}
    assert node_seconds(["t1", "t2", "t3"], {"t1": 2.0, "t2": 4.0}) == 9.0
    assert node_seconds(["t1", "t2"]) == 2.0


def test_among_idle_members_the_one_given_least_so_far_is_used() -> None:
    clock = Clock()
    fan = FanOut({"p": ["vm0", "vm1", "vm2"]}, {"a": ("p", 1.0), "g": ("p", 2.0), "b0": ("p", 1.0),
                                                "b1": ("p", 1.0)}, clock=clock)
    assert fan.started("a") == "vm0" and fan.started("g") == "vm1"
    clock.now = 3.0
    fan.finished("a")
    fan.finished("g")
    assert fan.started("b0") == "vm2"  # all idle: the one that has done nothing yet
    assert fan.started("b1") == "vm0"


def test_nodes_recorded_at_zero_seconds_still_spread_over_every_member() -> None:
    """JUnit files record fast tests as 0.000 s: loads and work given all tie, and the count decides."""
    fan = FanOut({"p": ["vm0", "vm1", "vm2"]}, {n: ("p", 0.0) for n in ("a", "g", "b0", "b1")}, clock=Clock())
    assert [fan.started(n) for n in ("a", "g", "b0", "b1")] == ["vm0", "vm1", "vm2", "vm0"]

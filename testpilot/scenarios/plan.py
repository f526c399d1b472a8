"""Scenario planning and step decisions: pure functions over plain data, no I/O.

``plan_scenario`` turns a ScenarioConfig into ordered steps with their dependencies and input bindings.
``decide_step`` then says, for one step, whether to run it (and with which inputs), skip it (an app is
unavailable or a dependency failed), block it (an input is missing or has the wrong type), or reuse its
result from a previous run (resume). ``scenario_verdict`` gives passed / failed / blocked.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from testpilot.errors import ConfigError
from testpilot.scenarios.config import ScenarioConfig

# JSON value types a step output may declare. bool is an int subclass in Python, so it is excluded
# from int/float explicitly; float accepts an int because JSON writes 5.0 as 5.
OUTPUT_TYPES: dict[str, Callable[[Any], bool]] = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "any": lambda v: True,
}

StepStatus = Literal["passed", "failed", "skipped", "blocked"]
Cause = Literal["", "failure", "unavailable", "input", "dependency_failed"]


@dataclass(frozen=True)
class InputBinding:
    """Input ``name`` of a step comes from output ``field`` of step ``step``."""

    name: str
    step: str
    field: str
    type: str
    flow: str = ""


@dataclass(frozen=True)
class PlannedStep:
    name: str
    app: str
    test: str | None
    command: str | None
    needs: tuple[str, ...]
    outputs: Mapping[str, str]
    inputs: tuple[InputBinding, ...] = ()
    index: int = 0


@dataclass(frozen=True)
class ScenarioPlan:
    name: str
    steps: tuple[PlannedStep, ...]

    def step(self, name: str) -> PlannedStep:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"scenario {self.name!r} has no step {name!r}")

    @property
    def apps(self) -> list[str]:
        return list(dict.fromkeys(s.app for s in self.steps))


@dataclass(frozen=True)
class StepResult:
    """What happened to a step. ``cause`` keeps why a step did not pass, for the verdict;
    ``reused`` marks a result carried over from a previous run."""

    status: StepStatus
    outputs: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    cause: Cause = ""
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for persisting a run's results so a later run can resume from them."""
        return {"status": self.status, "outputs": dict(self.outputs), "reason": self.reason, "cause": self.cause,
                "reused": self.reused}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepResult:
        return cls(data["status"], dict(data.get("outputs", {})), data.get("reason", ""), data.get("cause", ""),
                   bool(data.get("reused", False)))


@dataclass(frozen=True)
class StepDecision:
    step: str
    action: Literal["run", "skip", "block", "reuse"]
    reason: str = ""
    inputs: Mapping[str, Any] = field(default_factory=dict)
    result: StepResult | None = None
    """The result to record without running, for skip / block / reuse."""


@dataclass(frozen=True)
class Verdict:
    status: Literal["passed", "failed", "blocked"]
    reasons: tuple[str, ...] = ()


def _field(scenario: str, *parts: object) -> str:
    return ".".join(["scenarios", scenario, *map(str, parts)])


def _parse_ref(ref: str, where: str, steps: dict[str, int], apps: dict[str, str], source: str
               ) -> tuple[str, str]:
    parts = ref.split(".")
    if len(parts) < 3:
        raise ConfigError(f"{ref!r} is not app.step.field", file=source, field=where,
                          hint="write the producing or consuming step as app.step.field")
    app, step, name = parts[0], ".".join(parts[1:-1]), parts[-1]
    if step not in steps:
        raise ConfigError(f"unknown step {step!r}", file=source, field=where,
                          hint=f"steps are: {', '.join(steps)}")
    if apps[step] != app:
        raise ConfigError(f"step {step!r} runs in app {apps[step]!r}, not {app!r}", file=source, field=where,
                          hint=f"write {apps[step]}.{step}.{name}")
    return step, name


def plan_scenario(name: str, config: ScenarioConfig, *, source: str = "") -> ScenarioPlan:
    """Ordered steps with dependencies (``after``, else the previous step, plus data-flow producers)
    and input bindings. Raises ConfigError naming the field for bad references, types or cycles."""
    index: dict[str, int] = {}
    apps: dict[str, str] = {}
    for i, step in enumerate(config.steps):
        if step.step_name in index:
            raise ConfigError(f"two steps are named {step.step_name!r}", file=source,
                              field=_field(name, "steps", i, "name"), hint="give one of them a 'name'")
        index[step.step_name] = i
        apps[step.step_name] = step.app
    names = list(index)
    needs: dict[str, list[str]] = {}
    for i, step in enumerate(config.steps):
        if step.after is None:
            needs[names[i]] = [names[i - 1]] if i else []
            continue
        for dep in step.after:
            if dep not in index:
                raise ConfigError(f"unknown step {dep!r} in after", file=source,
                                  field=_field(name, "steps", i, "after"), hint=f"steps are: {', '.join(names)}")
        needs[names[i]] = list(dict.fromkeys(step.after))
    inputs: dict[str, list[InputBinding]] = {n: [] for n in names}
    for key, flow in config.data_flow.items():
        where = _field(name, "data_flow", key)
        if flow.type not in OUTPUT_TYPES:
            raise ConfigError(f"unknown type {flow.type!r}", file=source, field=where + ".type",
                              hint=f"use one of {', '.join(OUTPUT_TYPES)}")
        producer, out = _parse_ref(flow.source, where + ".from", index, apps, source)
        consumer, inp = _parse_ref(flow.target, where + ".to", index, apps, source)
        declared = config.steps[index[producer]].outputs
        if out in declared and declared[out] != flow.type:
            raise ConfigError(f"step {producer!r} declares output {out!r} as {declared[out]}, the flow as "
                              f"{flow.type}", file=source, field=where + ".type", hint="make the types agree")
        if producer == consumer:
            raise ConfigError("a step cannot feed itself", file=source, field=where)
        if any(b.name == inp for b in inputs[consumer]):
            raise ConfigError(f"step {consumer!r} already receives input {inp!r}", file=source, field=where + ".to",
                              hint="each input has one producer")
        inputs[consumer].append(InputBinding(inp, producer, out, flow.type, key))
        if producer not in needs[consumer]:
            needs[consumer].append(producer)
    for i, step in enumerate(config.steps):
        for out, type_ in step.outputs.items():
            if type_ not in OUTPUT_TYPES:
                raise ConfigError(f"unknown type {type_!r} for output {out!r}", file=source,
                                  field=_field(name, "steps", i, "outputs", out),
                                  hint=f"use one of {', '.join(OUTPUT_TYPES)}")
    order = _stable_order(names, needs, name, source)
    planned = []
    for step_name in order:
        step = config.steps[index[step_name]]
        outputs = dict(step.outputs)
        for consumer_inputs in inputs.values():
            for b in consumer_inputs:
                if b.step == step_name:
                    outputs.setdefault(b.field, b.type)
        planned.append(PlannedStep(step_name, step.app, step.test, step.command, tuple(needs[step_name]),
                                   outputs, tuple(inputs[step_name]), index[step_name]))
    return ScenarioPlan(name, tuple(planned))


def _stable_order(names: list[str], needs: dict[str, list[str]], scenario: str, source: str) -> list[str]:
    # Kahn's algorithm with a heap on declaration index, so independent steps keep the order written.
    position = {n: i for i, n in enumerate(names)}
    waiting = {n: len(needs[n]) for n in names}
    users: dict[str, list[str]] = {n: [] for n in names}
    for n in names:
        for dep in needs[n]:
            users[dep].append(n)
    ready = [position[n] for n in names if not waiting[n]]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        n = names[heapq.heappop(ready)]
        order.append(n)
        for user in users[n]:
            waiting[user] -= 1
            if not waiting[user]:
                heapq.heappush(ready, position[user])
    if len(order) < len(names):
        stuck = [n for n in names if waiting[n]]
        cycle = _find_cycle(stuck, needs)
        raise ConfigError(f"steps wait for each other: {' -> '.join(cycle)}", file=source,
                          field=_field(scenario, "steps"), hint="fix 'after' or the data_flow direction")
    return order


def _find_cycle(stuck: list[str], needs: dict[str, list[str]]) -> list[str]:
    path: list[str] = [stuck[0]]
    while True:
        nxt = next(d for d in needs[path[-1]] if d in stuck)
        if nxt in path:
            return [*path[path.index(nxt):], nxt]
        path.append(nxt)


def output_problem(step: str, app: str, outputs: Mapping[str, Any], name: str, type_: str) -> str | None:
    """Why output ``name`` of ``step`` cannot be used as ``type_``, or None when it can."""
    if name not in outputs:
        return f"step {step} (app {app}) did not publish output {name!r}"
    value = outputs[name]
    if not OUTPUT_TYPES[type_](value):
        return (f"step {step} (app {app}) published output {name!r} as {type(value).__name__} "
                f"{value!r:.40}, expected {type_}")
    return None


def output_problems(step: PlannedStep, outputs: Mapping[str, Any]) -> list[str]:
    """Every declared output of ``step`` that is missing or has the wrong type."""
    return [p for name, t in step.outputs.items() if (p := output_problem(step.name, step.app, outputs, name, t))]


def resolve_inputs(plan: ScenarioPlan, step: PlannedStep, results: Mapping[str, StepResult]
                   ) -> tuple[dict[str, Any], list[str]]:
    """The step's inputs from its producers' outputs, and the problems (missing / wrong type)."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for b in step.inputs:
        producer = plan.step(b.step)
        outputs = results[b.step].outputs if b.step in results else {}
        problem = output_problem(producer.name, producer.app, outputs, b.field, b.type)
        if problem:
            problems.append(f"input {b.name!r}: {problem}")
        else:
            values[b.name] = outputs[b.field]
    return values, problems


def decide_step(plan: ScenarioPlan, name: str, results: Mapping[str, StepResult], *,
                unavailable: Mapping[str, str] | None = None,
                previous: Mapping[str, StepResult] | None = None) -> StepDecision:
    """What to do with step ``name`` now that its dependencies have ``results``.

    ``unavailable`` maps an app to its failed health check's detail. ``previous`` holds the persisted
    results of an earlier run of this scenario: a step that passed there, whose dependencies were all
    reused too and whose outputs are still valid, is reused instead of run again.
    """
    step = plan.step(name)
    unavailable = unavailable or {}
    if step.app in unavailable:
        reason = f"app {step.app} unavailable: {unavailable[step.app]}"
        return StepDecision(name, "skip", reason, result=StepResult("skipped", reason=reason, cause="unavailable"))
    for dep in step.needs:
        if dep not in results:
            raise KeyError(f"step {name!r} decided before its dependency {dep!r}")
        got = results[dep]
        if got.status == "failed":
            reason = f"dependency {dep} failed"
            return StepDecision(name, "skip", reason,
                                result=StepResult("skipped", reason=reason, cause="dependency_failed"))
        if got.status in ("skipped", "blocked"):
            # Carry the root cause, so every step downstream of a down app says which app and why.
            return StepDecision(name, "skip", got.reason,
                                result=StepResult("skipped", reason=got.reason, cause=got.cause))
    before = (previous or {}).get(name)
    if (before is not None and before.status == "passed" and all(results[d].reused for d in step.needs)
            and not output_problems(step, before.outputs)):
        reason = "passed in the previous run"
        return StepDecision(name, "reuse", reason, result=StepResult("passed", dict(before.outputs), reason,
                                                                     reused=True))
    inputs, problems = resolve_inputs(plan, step, results)
    if problems:
        reason = "; ".join(problems)
        return StepDecision(name, "block", reason, result=StepResult("blocked", reason=reason, cause="input"))
    return StepDecision(name, "run", inputs=inputs)


def scenario_verdict(plan: ScenarioPlan, results: Mapping[str, StepResult]) -> Verdict:
    """failed if a step really failed; blocked if steps were skipped or blocked (an app down, an input
    missing) with no real failure; passed when every step passed."""
    failed = [f"{s.name}: {results[s.name].reason or 'failed'}" for s in plan.steps
              if s.name in results and results[s.name].status == "failed"]
    if failed:
        return Verdict("failed", tuple(failed))
    not_passed = [f"{s.name}: {results[s.name].reason if s.name in results else 'not run'}"
                  for s in plan.steps if s.name not in results or results[s.name].status != "passed"]
    if not_passed:
        return Verdict("blocked", tuple(not_passed))
    return Verdict("passed")


Executor = Callable[[PlannedStep, Mapping[str, Any]], StepResult]


@dataclass(frozen=True)
class ScenarioRun:
    results: dict[str, StepResult]
    verdict: Verdict
    ran: tuple[str, ...]


def run_scenario(plan: ScenarioPlan, execute: Executor, *, unavailable: Mapping[str, str] | None = None,
                 previous: Mapping[str, StepResult] | None = None) -> ScenarioRun:
    """Run the plan in order with ``execute(step, inputs) -> StepResult`` doing the I/O. The Prefect
    flow does the same per task; this sequential form serves the CLI and tests."""
    results: dict[str, StepResult] = {}
    ran: list[str] = []
    for step in plan.steps:
        decision = decide_step(plan, step.name, results, unavailable=unavailable, previous=previous)
        if decision.action == "run":
            ran.append(step.name)
            results[step.name] = execute(step, decision.inputs)
        else:
            assert decision.result is not None
            results[step.name] = decision.result
    return ScenarioRun(results, scenario_verdict(plan, results), tuple(ran))

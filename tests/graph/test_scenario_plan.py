"""Scenario planning: order, after:, data flow inputs, blocked inputs, unavailability, resume, verdict."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from testpilot.errors import ConfigError
from testpilot.scenarios.config import ScenarioConfig
from testpilot.scenarios.plan import (
    PlannedStep,
    StepResult,
    decide_step,
    output_problems,
    plan_scenario,
    run_scenario,
    scenario_verdict,
)

PAYMENT = {
    "steps": [
        {"app": "user-service", "test": "tests/test_flow.py::test_login", "outputs": {"token": "str"}},
        {"app": "payment-service", "test": "tests/test_flow.py::test_create_payment",
         "outputs": {"payment_id": "int"}},
        {"app": "payment-service", "test": "tests/test_flow.py::test_confirm_payment", "name": "confirm"},
        {"app": "user-service", "test": "tests/test_flow.py::test_profile", "after": ["test_login"]},
        {"app": "audit", "command": "bin/check-audit --all", "after": []},
    ],
    "data_flow": {
        "token": {"from": "user-service.test_login.token", "to": "payment-service.test_create_payment.token"},
        "payment": {"from": "payment-service.test_create_payment.payment_id", "to": "payment-service.confirm.pid",
                    "type": "int"},
    },
}


def _plan(data: dict[str, Any] = PAYMENT):  # type: ignore[no-untyped-def]
    return plan_scenario("pay", ScenarioConfig.model_validate(data), source="testpilot.yaml")


def test_order_dependencies_and_inputs() -> None:
    plan = _plan()
    assert [s.name for s in plan.steps] == ["test_login", "test_create_payment", "confirm", "test_profile",
                                            "check-audit"]
    assert {s.name: s.needs for s in plan.steps} == {
        "test_login": (), "test_create_payment": ("test_login",), "confirm": ("test_create_payment",),
        "test_profile": ("test_login",), "check-audit": ()}
    confirm = plan.step("confirm")
    assert [(b.name, b.step, b.field, b.type) for b in confirm.inputs] == [("pid", "test_create_payment",
                                                                           "payment_id", "int")]
    assert plan.step("test_login").outputs == {"token": "str"}
    assert plan.apps == ["user-service", "payment-service", "audit"]


def test_after_reorders_and_data_flow_adds_an_ordering() -> None:
    data = {
        "steps": [
            {"app": "a", "command": "consume", "after": []},
            {"app": "a", "command": "produce", "after": []},
            {"app": "a", "command": "last", "after": ["consume", "produce"]},
        ],
        "data_flow": {"x": {"from": "a.produce.value", "to": "a.consume.value", "type": "float"}},
    }
    plan = _plan(data)
    assert [s.name for s in plan.steps] == ["produce", "consume", "last"]
    assert plan.step("consume").needs == ("produce",)
    assert plan.step("produce").outputs == {"value": "float"}


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"steps": [{"app": "a", "command": "x", "after": ["y"]}]}, "scenarios.pay.steps.0.after", "unknown step 'y'"),
    ({"steps": [{"app": "a", "command": "x"}, {"app": "a", "command": "x"}]}, "scenarios.pay.steps.1.name",
     "two steps are named 'x'"),
    ({"steps": [{"app": "a", "command": "x", "after": ["z"]}, {"app": "a", "command": "z", "after": ["x"]}]},
     "scenarios.pay.steps", "steps wait for each other: x -> z -> x"),
    ({"steps": [{"app": "a", "command": "x"}, {"app": "a", "command": "z"}],
      "data_flow": {"f": {"from": "b.x.o", "to": "a.z.i"}}}, "scenarios.pay.data_flow.f.from",
     "step 'x' runs in app 'a', not 'b'"),
    ({"steps": [{"app": "a", "command": "x"}, {"app": "a", "command": "z"}],
      "data_flow": {"f": {"from": "a.x", "to": "a.z.i"}}}, "scenarios.pay.data_flow.f.from", "is not app.step.field"),
    ({"steps": [{"app": "a", "command": "x", "outputs": {"o": "int"}}, {"app": "a", "command": "z"}],
      "data_flow": {"f": {"from": "a.x.o", "to": "a.z.i"}}}, "scenarios.pay.data_flow.f.type",
     "declares output 'o' as int, the flow as str"),
    ({"steps": [{"app": "a", "command": "x", "outputs": {"o": "integer"}}]}, "scenarios.pay.steps.0.outputs.o",
     "unknown type 'integer'"),
    ({"steps": [{"app": "a", "command": "x"}, {"app": "a", "command": "z", "after": []}],
      "data_flow": {"f": {"from": "a.z.o", "to": "a.x.i"}, "g": {"from": "a.x.o", "to": "a.z.i"}}},
     "scenarios.pay.steps", "steps wait for each other"),
])
def test_config_errors_name_the_field(data: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _plan(data)
    assert err.value.field == field and message in err.value.message and err.value.file == "testpilot.yaml"


def _executor(outputs: Mapping[str, Mapping[str, Any]], fail: set[str] = frozenset(),  # type: ignore[assignment]
              counter: Counter[str] | None = None):  # type: ignore[no-untyped-def]
    seen_inputs: dict[str, Mapping[str, Any]] = {}

    def execute(step: PlannedStep, inputs: Mapping[str, Any]) -> StepResult:
        seen_inputs[step.name] = dict(inputs)
        if counter is not None:
            counter[step.name] += 1
        if step.name in fail:
            return StepResult("failed", reason="assert 402 == 200", cause="failure")
        return StepResult("passed", outputs.get(step.name, {}))

    execute.seen_inputs = seen_inputs  # type: ignore[attr-defined]
    return execute


GOOD = {"test_login": {"token": "t0k"}, "test_create_payment": {"payment_id": 42}}


def test_inputs_come_from_producers_outputs() -> None:
    execute = _executor(GOOD)
    run = run_scenario(_plan(), execute)
    assert run.verdict.status == "passed" and run.verdict.reasons == ()
    assert execute.seen_inputs == {"test_login": {}, "test_create_payment": {"token": "t0k"},  # type: ignore[attr-defined]
                                   "confirm": {"pid": 42}, "test_profile": {}, "check-audit": {}}


@pytest.mark.parametrize(("outputs", "reason"), [
    ({"test_login": {"token": "t"}, "test_create_payment": {}},
     "input 'pid': step test_create_payment (app payment-service) did not publish output 'payment_id'"),
    ({"test_login": {"token": "t"}, "test_create_payment": {"payment_id": "42"}},
     "input 'pid': step test_create_payment (app payment-service) published output 'payment_id' as str '42', "
     "expected int"),
    ({"test_login": {"token": "t"}, "test_create_payment": {"payment_id": True}},
     "published output 'payment_id' as bool True, expected int"),
])
def test_missing_or_wrong_typed_output_blocks_the_consumer(outputs: dict[str, Any], reason: str) -> None:
    run = run_scenario(_plan(), _executor(outputs))
    confirm = run.results["confirm"]
    assert confirm.status == "blocked" and reason in confirm.reason and confirm.cause == "input"
    assert "confirm" not in run.ran
    assert run.verdict.status == "blocked"  # not a test failure
    assert run.verdict.reasons == (f"confirm: {confirm.reason}",)
    assert output_problems(_plan().step("test_create_payment"), outputs["test_create_payment"]) == [
        confirm.reason.removeprefix("input 'pid': ")]


def test_unavailable_app_skips_its_steps_and_dependents_but_not_the_rest() -> None:
    counter: Counter[str] = Counter()
    detail = "HTTP GET http://127.0.0.1:9/health: Connection refused (after 6 attempts)"
    run = run_scenario(_plan(), _executor(GOOD, counter=counter), unavailable={"payment-service": detail})
    reason = f"app payment-service unavailable: {detail}"
    assert run.results["test_create_payment"] == StepResult("skipped", reason=reason, cause="unavailable")
    assert run.results["confirm"].status == "skipped" and run.results["confirm"].reason == reason
    assert [run.results[s].status for s in ("test_login", "test_profile", "check-audit")] == ["passed"] * 3
    assert run.ran == ("test_login", "test_profile", "check-audit")
    assert counter == Counter({"test_login": 1, "test_profile": 1, "check-audit": 1})
    assert run.verdict.status == "blocked"
    assert run.verdict.reasons == (f"test_create_payment: {reason}", f"confirm: {reason}")


def test_unavailable_producer_skips_consumers_in_other_apps() -> None:
    run = run_scenario(_plan(), _executor(GOOD), unavailable={"user-service": "TCP 127.0.0.1:1: refused"})
    assert {n: r.status for n, r in run.results.items()} == {
        "test_login": "skipped", "test_create_payment": "skipped", "confirm": "skipped", "test_profile": "skipped",
        "check-audit": "passed"}
    assert run.results["confirm"].reason == "app user-service unavailable: TCP 127.0.0.1:1: refused"


def test_a_failure_skips_dependents_and_fails_the_verdict() -> None:
    run = run_scenario(_plan(), _executor(GOOD, fail={"test_create_payment"}))
    assert run.results["confirm"] == StepResult("skipped", reason="dependency test_create_payment failed",
                                                cause="dependency_failed")
    assert run.results["test_profile"].status == "passed"
    assert run.verdict.status == "failed"
    assert run.verdict.reasons == ("test_create_payment: assert 402 == 200",)


def test_resume_runs_from_the_failed_step_without_repeating_passed_ones() -> None:
    counter: Counter[str] = Counter()
    plan = _plan()
    first = run_scenario(plan, _executor(GOOD, fail={"confirm"}, counter=counter))
    assert first.verdict.status == "failed"
    assert counter == Counter({"test_login": 1, "test_create_payment": 1, "confirm": 1, "test_profile": 1,
                               "check-audit": 1})
    second_exec = _executor(GOOD, counter=counter)
    persisted = json.loads(json.dumps({k: r.to_dict() for k, r in first.results.items()}))
    second = run_scenario(plan, second_exec, previous={k: StepResult.from_dict(v) for k, v in persisted.items()})
    assert second.ran == ("confirm",)
    assert counter["test_login"] == counter["test_create_payment"] == 1 and counter["confirm"] == 2
    assert second_exec.seen_inputs == {"confirm": {"pid": 42}}  # type: ignore[attr-defined]
    assert second.results["test_login"].reused and second.results["test_login"].outputs == {"token": "t0k"}
    assert second.verdict.status == "passed"


def test_resume_reruns_a_passed_step_whose_dependency_reruns_or_whose_outputs_are_stale() -> None:
    plan = _plan()
    previous = {"test_login": StepResult("passed", {"token": 5}),  # wrong type now: must run again
                "test_create_payment": StepResult("passed", {"payment_id": 1}),
                "test_profile": StepResult("passed")}
    run = run_scenario(plan, _executor(GOOD), previous=previous)
    assert run.ran == ("test_login", "test_create_payment", "confirm", "test_profile", "check-audit")


def test_decide_step_refuses_to_decide_before_dependencies() -> None:
    with pytest.raises(KeyError, match="before its dependency 'test_login'"):
        decide_step(_plan(), "test_create_payment", {})
    decision = decide_step(_plan(), "test_create_payment", {"test_login": StepResult("passed", {"token": "x"})})
    assert decision.action == "run" and decision.inputs == {"token": "x"} and decision.result is None


def test_verdict_counts_steps_without_result_as_not_run() -> None:
    plan = _plan()
    verdict = scenario_verdict(plan, {"test_login": StepResult("passed")})
    assert verdict.status == "blocked" and "confirm: not run" in verdict.reasons

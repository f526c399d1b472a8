"""Cross-application scenarios (the suite's ``scenarios`` section)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StepConfig(BaseModel):
    """One step: a pytest node id or a command, run in ``app``'s environment."""

    model_config = ConfigDict(extra="forbid")
    app: str
    test: str | None = Field(None, description="Pytest node id, relative to the app.")
    command: str | None = Field(None, description="A command instead of a test; outputs go to a JSON file.")
    name: str | None = Field(None, description="Step id; defaults to the test function or command name.")
    after: list[str] | None = Field(None, description="Step names this waits for; default: the previous step.")
    outputs: dict[str, str] = Field(default_factory=dict, description="Output name -> type (str, int, ...).")

    @model_validator(mode="after")
    def _one_of_test_or_command(self) -> StepConfig:
        if bool(self.test) == bool(self.command):
            raise ValueError("a step needs exactly one of 'test' or 'command'")
        return self

    @property
    def step_name(self) -> str:
        if self.name:
            return self.name
        if self.test:
            return self.test.split("::")[-1].split("[")[0]
        return (self.command or "").split()[0].rsplit("/", 1)[-1]


class DataFlowConfig(BaseModel):
    """``from: app.step.field`` feeds ``to: app.step.field``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    source: str = Field(alias="from")
    target: str = Field(alias="to")
    type: str = Field("str", description="Expected type of the value: str, int, float, bool, dict, list.")


class ScenarioConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: list[StepConfig]
    data_flow: dict[str, DataFlowConfig] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

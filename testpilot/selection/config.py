"""Selection settings for one app (the suite's ``selection.<app>`` section)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MappingRule(BaseModel):
    """A changed file matching ``source_pattern`` selects the tests ``test_pattern`` names.

    ``{1}``, ``{2}`` ... in ``test_pattern`` are the regex's capture groups.
    """

    model_config = ConfigDict(extra="forbid")
    id: str = Field(default="", description="Stable id used in explanations; defaults to the rule's position.")
    source_pattern: str = Field(description="Regex, matched against the path relative to the app.")
    test_pattern: str | list[str] = Field(description="Test path(s) or glob(s), with {N} for capture groups.")


class UnanalysableRule(BaseModel):
    """What a change to a file the engine cannot analyse selects (dependency files, config, data)."""

    model_config = ConfigDict(extra="forbid")
    pattern: str = Field(description="Glob of files, relative to the app.")
    selects: list[str] = Field(default_factory=lambda: ["*"],
                               description="Test globs to select; ['*'] is the app's whole suite, [] nothing.")


class SelectionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: Literal["change-based", "all"] = Field(
        default="change-based", description="'all' always runs the app's whole suite.")
    test_paths: list[str] | None = Field(default=None, description="Overrides the app's test_paths for selection.")
    mapping_rules: list[MappingRule] = Field(default_factory=list)
    always_run: list[str] = Field(default_factory=list, description="Test globs selected on every change.")
    never_run: list[str] = Field(default_factory=list, description="Test globs never selected.")
    unanalysable: list[UnanalysableRule] = Field(default_factory=list)

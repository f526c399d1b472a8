"""Failure categories and routing (the suite's ``failures`` section)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# ``to_investigate`` is ReportPortal's bucket for failures nobody could type yet; only ``unclassified`` uses it.
DefectType = Literal["product", "test", "system", "to_investigate"]


_BLOCK_REF = re.compile(r"^(?:[a-z0-9-]+/)?[a-z0-9-]+$")


def _block_ref(value: str) -> str:
    if not _BLOCK_REF.match(value):
        raise ValueError(f"{value!r} is not a block name: use lowercase letters, numbers and dashes, "
                         "optionally after the block type slug ('slack-payments' or 'slack-webhook/slack-payments')")
    return value


BlockRef = Annotated[str, AfterValidator(_block_ref)]
"""Name of a saved Prefect block, optionally ``<block-type-slug>/<name>`` when names repeat across types."""


class IssuesConfig(BaseModel):
    """A GitHub issue per cluster through a ``GitHubIssues`` block; a recurring cluster gets a comment."""

    model_config = ConfigDict(extra="forbid")
    block: BlockRef = Field(description="Name of the GitHubIssues block (repository and token).")
    categories: list[str] = Field(default_factory=list,
                                  description="Only clusters of these categories; default: every cluster.")


class CategoryRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    patterns: list[str] = Field(default_factory=list,
                                description="Regexes (case-insensitive) searched in the message, traceback and output.")
    exception_types: list[str] = Field(default_factory=list,
                                       description="Exception class names, short (``IntegrityError``) or dotted.")
    defect_type: DefectType | None = Field(
        default=None, description="ReportPortal-style defect type; default: the one the built-in rules give the failure.")
    hint: str = Field(default="", description="Shown with every failure of this category.")


class FailuresConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    categories: list[CategoryRule] = Field(default_factory=list, description="Applied in order, before built-ins.")
    routing: dict[str, str] = Field(default_factory=dict, description="Category name -> team.")
    reruns: int = Field(default=1, ge=0, description="Re-run failed tests this many times to detect flakiness "
                                                     "(one by default; 0 turns re-runs off).")
    similarity: float = Field(default=0.8, gt=0, le=1, description="Token-set similarity to join a cluster.")
    hints: dict[str, str] = Field(default_factory=dict,
                                  description="Category name -> hint; overrides the built-in hint.")
    project_paths: list[str] = Field(
        default_factory=list,
        description="Path prefixes of project code in tracebacks; default: any frame outside site-packages.")
    codeowners: str | None = Field(default=None, description="CODEOWNERS file, relative to the repository root.")
    default_team: str = Field(default="", description="Receiver of clusters that no rule or owner claims.")
    dirty_host_rate: float = Field(default=0.5, gt=0, le=1,
                                   description="System-failure rate over recent runs that marks a host dirty.")
    dirty_host_min_runs: int = Field(default=3, ge=1, description="Runs on a host before it can be marked dirty.")
    host_window: int = Field(default=10, ge=1, description="Recent runs per host used for its failure rate.")
    notify: dict[str, BlockRef] = Field(
        default_factory=dict,
        description="Team -> name of a Prefect notification block; 'default' takes teams without their own.")
    issues: IssuesConfig | None = Field(default=None, description="Open or update a GitHub issue per cluster.")

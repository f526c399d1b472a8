"""Failure categories and routing (the suite's ``failures`` section)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DefectType = Literal["product", "test", "system"]


class CategoryRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    patterns: list[str] = Field(default_factory=list,
                                description="Regexes searched in the message, traceback and output.")
    exception_types: list[str] = Field(default_factory=list, description="Exception class names.")
    defect_type: DefectType = Field("product", description="ReportPortal-style defect type.")
    hint: str = Field("", description="Shown with every failure of this category.")


class FailuresConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    categories: list[CategoryRule] = Field(default_factory=list, description="Applied in order.")
    routing: dict[str, str] = Field(default_factory=dict, description="Category name -> team.")
    reruns: int = Field(0, ge=0, description="Re-run failed tests this many times to detect flakiness.")
    similarity: float = Field(0.8, gt=0, le=1, description="Token-set similarity to join a cluster.")

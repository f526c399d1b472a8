"""Dataset declarations (the suite's ``data`` section). Field specs are checked by ``testpilot.testdata``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DatasetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    count: int = Field(10, ge=0, description="Rows to generate; a dataset whose ref sets per_parent gets its "
                                            "row count from its parents instead.")
    fields: dict[str, Any] = Field(alias="schema", description="Field name -> spec: a shorthand string "
                                   "('uuid', 'int:1..9 unique', 'ref:t.f'), a mapping with 'type', or a "
                                   "FieldSpec. See docs/testdata.md.")
    locale: str = Field("en_US", description="Faker locale.")
    seed: int = Field(0, description="Same schema, seed and version give the same rows.")
    version: str = Field("1", description="Bump to change the data on purpose.")
    targets: list[str] = Field(default_factory=list,
                               description="Where to load: 'app' or 'app.service'; empty means every database.")

"""The plain-data output of failure analysis: clusters as they go into artifacts, report.json and history."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ClusterReport(BaseModel):
    """One cluster of failures with one cause. Every field is JSON-able; past runs' clusters come back as dicts."""

    id: str = Field(description="Stable key of the cluster's leading signature; the same cause keeps it across runs.")
    signature: str
    exception_type: str = ""
    message: str = Field(default="", description="Normalised message (volatile parts replaced).")
    frames: list[str] = Field(default_factory=list)
    tokens: list[str] = Field(default_factory=list, description="Token set used to match near-duplicates.")
    category: str = "unclassified"
    defect_type: str = "to_investigate"
    rule: str = ""
    evidence: str = ""
    categories: dict[str, int] = Field(default_factory=dict, description="Category -> failures, if mixed.")
    count: int = 0
    tests: list[str] = Field(default_factory=list)
    apps: list[str] = Field(default_factory=list)
    environments: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)
    phases: list[str] = Field(default_factory=list)
    example: str = Field(default="", description="The leading failure's message, redacted and shortened.")
    likely_cause: str = ""
    suggestions: list[str] = Field(default_factory=list)
    hint: str = ""
    team: str = ""
    route_reason: str = ""
    owners: list[str] = Field(default_factory=list)
    first_seen: str = ""
    last_seen: str = ""
    first_run: str = ""
    occurrences: int = 0
    runs_seen: int = 0
    new: bool = True
    matched: str = Field(default="", description="How it matched history: 'id', 'similar 0.86' or ''.")
    nearest: str = Field(default="", description="For unclassified clusters: the nearest known cluster's id.")
    nearest_signature: str = ""
    nearest_category: str = ""
    nearest_similarity: float = 0.0
    flip_rates: dict[str, float] = Field(default_factory=dict, description="Test -> flip rate, for flaky tests.")
    crash_point: str = Field(default="", description="Innermost project frame (or called function) members share.")
    shared: str = Field(default="", description="What the members share, in words: why they are one cluster.")


class TestVerdict(BaseModel):
    """The answer for one failing test: its own category (not its cluster's majority), cluster and owner."""

    __test__ = False
    test_id: str
    app: str = ""
    phase: str = "test"
    category: str
    defect_type: str
    rule: str = ""
    evidence: str = ""
    cluster: str = ""
    exception_type: str = ""
    message: str = ""
    suggested_cause: str = ""
    owner: str = ""


class FailureAnalysis(BaseModel):
    """Everything one run's failure analysis found."""

    run_id: str = ""
    flow_run_url: str = ""
    analysed_at: str = ""
    failures: int = 0
    clusters: list[ClusterReport] = Field(default_factory=list)
    tests: list[TestVerdict] = Field(default_factory=list, description="One verdict per failure, in input order.")
    dirty_hosts: list[str] = Field(default_factory=list)
    host_rates: dict[str, float] = Field(default_factory=dict)

    def by_category(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for c in self.clusters:
            counts[c.category] = counts.get(c.category, 0) + c.count
        return counts

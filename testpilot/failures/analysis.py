"""One run's failure analysis: categorise, cluster, match history, suggest causes, route. Pure: data in, data out."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from testpilot.failures.categories import Categorisation, Categoriser
from testpilot.failures.clustering import cluster_signatures
from testpilot.failures.config import FailuresConfig
from testpilot.failures.flaky import flaky_by_signature, flip_rate
from testpilot.failures.history import match_history, nearest_known
from testpilot.failures.model import ClusterReport, FailureAnalysis, TestVerdict
from testpilot.failures.notify import redact
from testpilot.failures.records import FailureRecord
from testpilot.failures.routing import CodeOwners, decide_route, repo_path
from testpilot.failures.signature import Signature, signature_of
from testpilot.failures.suggest import (
    HostRun,
    HostStats,
    changed_file_suspects,
    host_stats,
    host_suggestion,
    is_dirty,
)
from testpilot.results import Outcome

_SCAN_FOR_SUSPECTS = 25  # records per cluster searched for changed files; one cause shows in the first few
_EXAMPLE_CHARS = 500


def categorise_and_sign(records: Sequence[FailureRecord], config: FailuresConfig | None = None,
                        ) -> tuple[list[Categorisation], list[Signature]]:
    """The category and signature of each record, in order. A failure that failed its re-run is flaky
    too when most failures of its exact signature in this run passed theirs (``flaky_by_signature``)."""
    config = config or FailuresConfig()
    categoriser = Categoriser(config)
    project = tuple(config.project_paths)
    categories: list[Categorisation] = []
    signatures: list[Signature] = []
    for record in records:  # one record at a time, so both steps share its parsed frames (a small cache)
        category = categoriser.categorise(record)
        categories.append(category)
        signatures.append(signature_of(record, project, system=category.defect_type == "system"))
    # Siblings compare with the test's own crash point kept (an infrastructure signature drops it, and a
    # test's connection race must not be read together with a database that is down for everyone).
    keys = [signature_of(r, project).key if r.rerun_outcomes and c.defect_type == "system" else s.key
            for r, c, s in zip(records, categories, signatures, strict=True)]
    for i, evidence in flaky_by_signature(keys, [r.rerun_outcomes for r in records]).items():
        if categories[i].rule.startswith("builtin:"):  # configured rules stay first
            categories[i] = Categorisation("flaky", "test", "builtin:flaky", evidence)
            signatures[i] = signature_of(records[i], project)
    return categories, signatures


def analyse_failures(
    records: Sequence[FailureRecord],
    config: FailuresConfig | None = None,
    *,
    run_id: str = "",
    flow_run_url: str = "",
    now: datetime | None = None,
    changed_files: Sequence[str] = (),
    changed_lines: Mapping[str, Sequence[int]] | None = None,
    past_clusters: Sequence[Mapping[str, Any]] = (),
    codeowners: CodeOwners | str | None = None,
    app_paths: Mapping[str, str] | None = None,
    host_history: Sequence[HostRun] = (),
    hosts_in_run: Sequence[str] = (),
    test_history: Mapping[str, Sequence[Outcome]] | None = None,
    secrets: Sequence[str] = (),
) -> FailureAnalysis:
    """Analyse one run's failures.

    ``changed_files``/``changed_lines`` are repository-relative (from the run's diff). ``past_clusters`` is
    the stored history (``updated_history`` of earlier runs, or their report clusters). ``codeowners`` is
    the CODEOWNERS text or a parsed one; ``app_paths`` maps app -> folder in the repository, to turn test
    node ids into repository paths. ``host_history`` is oldest first and excludes this run; ``hosts_in_run``
    names hosts that ran tests in this run, failing or not. ``secrets`` are redacted from example messages.
    """
    config = config or FailuresConfig()
    if test_history:  # a test's own history is evidence for its category (flips: flaky)
        records = [r.model_copy(update={"history": list(test_history[r.test_id])})
                   if not r.history and r.test_id in test_history else r for r in records]
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    owners = CodeOwners.parse(codeowners) if isinstance(codeowners, str) else codeowners
    apps = app_paths or {}
    categories, signatures = categorise_and_sign(records, config)
    categoriser = Categoriser(config)

    current = [HostRun(host=h, run_id=run_id, system_failure=False) for h in dict.fromkeys(hosts_in_run) if h]
    failing_hosts = {r.host for r, c in zip(records, categories, strict=True) if r.host and c.defect_type == "system"}
    seen_hosts = {h.host for h in current}
    current = [h.model_copy(update={"system_failure": h.host in failing_hosts}) for h in current]
    current += [HostRun(host=h, run_id=run_id, system_failure=True) for h in sorted(failing_hosts - seen_hosts)]
    stats = host_stats([*host_history, *current], window=config.host_window)
    dirty = sorted(h for h, s in stats.items()
                   if is_dirty(s, min_runs=config.dirty_host_min_runs, rate=config.dirty_host_rate))

    clusters: list[ClusterReport] = []
    verdicts: list[TestVerdict | None] = [None] * len(records)
    groups = _cluster_apart_flaky(signatures, categories, config.similarity)
    for group in groups:
        lead = group[0]
        members = [records[i] for i in group]
        cats = Counter(categories[i].category for i in group)
        category = cats.most_common(1)[0][0]
        chosen = next(categories[i] for i in group if categories[i].category == category)
        sig = signatures[lead]
        flaky = category == "flaky"
        text = f"[flaky] {sig.text}" if flaky else sig.text
        cluster = ClusterReport(
            id=hashlib.sha1(text.encode()).hexdigest()[:12] if flaky else sig.key, signature=redact(text, secrets),
            exception_type=sig.exception_type, message=redact(sig.message, secrets), frames=list(sig.frames),
            tokens=sorted(t for t in sig.tokens if redact(t, secrets) == t), category=category,
            defect_type=chosen.defect_type, rule=chosen.rule, evidence=redact(chosen.evidence, secrets),
            categories=dict(cats) if len(cats) > 1 else {}, count=len(group),
            tests=list(dict.fromkeys(r.test_id for r in members)),
            apps=_distinct(r.app for r in members), environments=_distinct(r.environment for r in members),
            hosts=_distinct(r.host for r in members), phases=_distinct(r.phase for r in members),
            example=redact(records[lead].message.strip()[:_EXAMPLE_CHARS], secrets),
            hint=categoriser.hint(category), crash_point=sig.crash_point,
            shared=_shared(sig, [signatures[i] for i in group]))
        suspects = _suggest(cluster, members, changed_files, changed_lines, stats, dirty)
        _route(cluster, members, config, owners, apps, suspects)
        for i in group:
            own = categories[i]
            verdicts[i] = TestVerdict(
                test_id=records[i].test_id, app=records[i].app, phase=records[i].phase, category=own.category,
                defect_type=own.defect_type, rule=own.rule, evidence=redact(own.evidence, secrets),
                cluster=cluster.id, exception_type=records[i].exception_type,
                message=redact(records[i].message.strip().split("\n", 1)[0][:200], secrets),
                suggested_cause=cluster.likely_cause, owner=cluster.team or ", ".join(cluster.owners))
        if category == "flaky" or test_history:
            cluster.flip_rates = _flip_rates(members, test_history or {})
        clusters.append(cluster)

    match_history(clusters, past_clusters, run_id=run_id, now=stamp, threshold=config.similarity)
    for cluster in clusters:
        if cluster.category == "unclassified":
            found = nearest_known(frozenset(cluster.tokens), [*clusters, *past_clusters], exclude=cluster.id)
            if found:
                entry, similarity = found
                cluster.nearest, cluster.nearest_signature = entry["id"], entry.get("signature") or ""
                cluster.nearest_category, cluster.nearest_similarity = entry["category"], round(similarity, 3)
    # Verdicts point at their cluster's id after history matching (a matched cluster keeps the past id).
    for cluster, group in zip(clusters, groups, strict=True):
        for i in group:
            verdict = verdicts[i]
            if verdict is not None:
                verdict.cluster, verdict.suggested_cause = cluster.id, cluster.likely_cause
    tests = [v for v in verdicts if v is not None]
    return FailureAnalysis(run_id=run_id, flow_run_url=flow_run_url, analysed_at=stamp, failures=len(records),
                           clusters=clusters, tests=tests, dirty_hosts=dirty,
                           host_rates={h: round(s.rate, 3) for h, s in sorted(stats.items())})


def _cluster_apart_flaky(signatures: list[Signature], categories: list[Categorisation],
                         threshold: float) -> list[list[int]]:
    """Cluster flaky failures apart from the rest: the same error failing for good is another problem
    (fix it) than failing now and then (quarantine it), even when the signatures are the same."""
    groups: list[list[int]] = []
    for flaky in (False, True):
        idx = [i for i, c in enumerate(categories) if (c.category == "flaky") == flaky]
        groups += [[idx[j] for j in g] for g in cluster_signatures([signatures[i] for i in idx], threshold)]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def _shared(lead: Signature, members: list[Signature]) -> str:
    """Why these failures are one cluster, in words."""
    where = f"crash point {lead.crash_point}" if lead.crash_point else "no project frame"
    text = f"{where}; {lead.exception_type}; message {lead.message!r}"
    points = {(m.exception_type, m.crash_point) for m in members}
    variants = len({m.message for m in members if (m.exception_type, m.crash_point) == lead.bucket}) - 1
    if variants:
        text += f" (and {variants} similar message{'s' if variants > 1 else ''} at the same crash point)"
    if len(points) > 1:
        meets = Counter(n for m in members for n in m.meets).most_common(3)
        text += (f"; joined with {len(points) - 1} other crash point{'s' if len(points) > 2 else ''}: "
                 f"they meet in {', '.join(n for n, _ in meets)}")
    return text


def _distinct(values: Any) -> list[str]:
    return [v for v in dict.fromkeys(values) if v]


def _suggest(cluster: ClusterReport, members: list[FailureRecord], changed_files: Sequence[str],
             changed_lines: Mapping[str, Sequence[int]] | None, stats: dict[str, HostStats],
             dirty: list[str]) -> list[str]:
    """Fill the cluster's suggestions; return the changed files found in its tracebacks."""
    texts: list[str] = []
    files: list[str] = []
    for record in members[:_SCAN_FOR_SUSPECTS]:
        suspects = changed_file_suspects(record.traceback, changed_files, changed_lines)
        if suspects:
            texts.extend(s.text for s in suspects[:3])
            files.extend(s.file for s in suspects[:3])
            break
    if cluster.defect_type == "system":
        environment = cluster.environments[0] if cluster.environments else ""
        for host in cluster.hosts[:5] or [""]:
            texts.append(host_suggestion(environment, stats.get(host), host in dirty).text)
    cluster.suggestions = list(dict.fromkeys(texts))
    cluster.likely_cause = cluster.suggestions[0] if cluster.suggestions else cluster.hint
    return list(dict.fromkeys(files))


def _route(cluster: ClusterReport, members: list[FailureRecord], config: FailuresConfig,
           owners: CodeOwners | None, app_paths: Mapping[str, str], suspects: list[str]) -> None:
    test_files = _distinct(repo_path(app_paths.get(r.app, ""), r.test_file) for r in members if r.test_file)
    route = decide_route(cluster.category, config.routing, test_files=test_files[:50],
                         suspect_files=suspects, codeowners=owners,
                         default_team=config.default_team)
    cluster.team, cluster.route_reason, cluster.owners = route.team, route.reason, list(route.owners)


def _flip_rates(members: list[FailureRecord], history: Mapping[str, Sequence[Outcome]]) -> dict[str, float]:
    rates: dict[str, float] = {}
    for record in members:
        if record.test_id in rates:
            continue
        this_run: list[Outcome] = ["failed", *record.rerun_outcomes]
        rates[record.test_id] = round(flip_rate([*history.get(record.test_id, ()), *this_run]), 3)
    return rates

"""Failure analysis: records, signatures, categories, clusters, suggested causes, routing and payloads.

Pure domain code: plain data in and out, no Prefect. ``analyse_failures`` is the entry point.
"""

from testpilot.failures.analysis import analyse_failures, categorise_and_sign
from testpilot.failures.categories import BUILTIN_DEFECT_TYPES, Categorisation, Categoriser
from testpilot.failures.clustering import cluster_signatures, jaccard
from testpilot.failures.flaky import decide_flaky, flip_rate, reruns_needed
from testpilot.failures.history import match_history, updated_history
from testpilot.failures.model import ClusterReport, FailureAnalysis
from testpilot.failures.notify import (
    CLUSTER_EVENT,
    cluster_event,
    issue_payload,
    notification_payload,
    notifications,
    redact,
)
from testpilot.failures.records import (
    FailureRecord,
    record_from_error,
    record_from_result,
    records_from_shard,
)
from testpilot.failures.report import cluster_rows, render_text, report_section
from testpilot.failures.routing import CodeOwners, decide_route
from testpilot.failures.signature import Signature, normalise_message, signature_of
from testpilot.failures.suggest import HostRun, changed_file_suspects, host_stats, is_dirty

__all__ = [
    "BUILTIN_DEFECT_TYPES", "CLUSTER_EVENT", "Categorisation", "Categoriser", "ClusterReport", "CodeOwners",
    "FailureAnalysis", "FailureRecord", "HostRun", "Signature", "analyse_failures", "categorise_and_sign",
    "changed_file_suspects", "cluster_event", "cluster_rows", "cluster_signatures", "decide_flaky",
    "decide_route", "flip_rate", "host_stats", "is_dirty", "issue_payload", "jaccard", "match_history",
    "normalise_message", "notification_payload", "notifications", "record_from_error", "record_from_result", "records_from_shard",
    "redact", "render_text", "report_section", "reruns_needed", "signature_of", "updated_history",
]

"""Test data: declared schemas, deterministic generation, per-run loading, clean-up. No Prefect here.

The Prefect shell calls ``validate_datasets`` early, caches ``generate`` on ``dataset_identity``,
``load``s into each environment database, and ``drop_run_data`` at teardown; the reaper calls ``gc``.
"""

from testpilot.testdata.config import DatasetConfig
from testpilot.testdata.export import export_csv, export_json
from testpilot.testdata.generate import (
    GENERATOR_VERSION,
    GeneratedData,
    TableData,
    dataset_identity,
    for_target,
    generate,
    rows_checksum,
)
from testpilot.testdata.loading import LoadReport, load
from testpilot.testdata.namespaces import (
    RunNamespace,
    drop_namespace,
    drop_run_data,
    gc,
    list_namespaces,
    namespace_name,
    namespace_url,
    parse_namespace,
)
from testpilot.testdata.schema import FieldSpec, parse_field
from testpilot.testdata.validate import validate_datasets

__all__ = [
    "GENERATOR_VERSION", "DatasetConfig", "FieldSpec", "GeneratedData", "LoadReport", "RunNamespace",
    "TableData", "dataset_identity", "drop_namespace", "drop_run_data", "export_csv", "export_json",
    "for_target", "gc", "generate", "list_namespaces", "load", "namespace_name", "namespace_url",
    "parse_field", "parse_namespace", "rows_checksum", "validate_datasets",
]

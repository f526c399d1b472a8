"""Test data: declared schemas, deterministic generation, per-run loading, clean-up. No Prefect here.

The Prefect shell calls ``validate_datasets`` early, caches ``generate`` on ``dataset_identity``,
``load``s into each environment database, and ``drop_run_data`` at teardown; the reaper calls ``gc``.

Names are imported on first use (PEP 562): the suite model imports ``testpilot.testdata.config``, and
commands that only read a suite (``testpilot analyse``, ``select``) must not load Faker and SQLAlchemy.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real names for type checkers; at run time they load on first use
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

_WHERE = {
    "DatasetConfig": "config", "export_csv": "export", "export_json": "export",
    "GENERATOR_VERSION": "generate", "GeneratedData": "generate", "TableData": "generate",
    "dataset_identity": "generate", "for_target": "generate", "generate": "generate", "rows_checksum": "generate",
    "LoadReport": "loading", "load": "loading",
    "RunNamespace": "namespaces", "drop_namespace": "namespaces", "drop_run_data": "namespaces", "gc": "namespaces",
    "list_namespaces": "namespaces", "namespace_name": "namespaces", "namespace_url": "namespaces",
    "parse_namespace": "namespaces",
    "FieldSpec": "schema", "parse_field": "schema", "validate_datasets": "validate",
}

__all__ = [
    "GENERATOR_VERSION", "DatasetConfig", "FieldSpec", "GeneratedData", "LoadReport", "RunNamespace",
    "TableData", "dataset_identity", "drop_namespace", "drop_run_data", "export_csv", "export_json",
    "for_target", "gc", "generate", "list_namespaces", "load", "namespace_name", "namespace_url",
    "parse_field", "parse_namespace", "rows_checksum", "validate_datasets",
]


class _Package(types.ModuleType):
    """``generate`` is both a submodule and its main function: once anything imports the submodule, the
    import system sets the package attribute to the module. The eager ``__init__`` rebound it to the
    function; lazily, this does."""

    def __getattribute__(self, name: str) -> Any:
        value = super().__getattribute__(name)
        if name == "generate" and isinstance(value, types.ModuleType):
            return value.generate
        return value


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'testpilot.testdata' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"testpilot.testdata.{_WHERE[name]}"), name)
    globals()[name] = value
    return value

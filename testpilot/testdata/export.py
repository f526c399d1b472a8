"""Export generated data as files, for apps that are not databases: one JSON or CSV file per table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from testpilot.testdata.generate import GeneratedData, jsonable


def export_json(data: GeneratedData, directory: str | Path) -> list[Path]:
    """Write ``<table>.json`` (a list of objects) per table; returns the paths written."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in data.tables.items():
        path = out / f"{name}.json"
        rows = [{c: jsonable(v) for c, v in zip(table.columns, row, strict=True)} for row in table.rows]
        path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        written.append(path)
    return written


def export_csv(data: GeneratedData, directory: str | Path) -> list[Path]:
    """Write ``<table>.csv`` with a header per table; nulls are empty cells, json cells are JSON text."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in data.tables.items():
        path = out / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(table.columns)
            for row in table.rows:
                writer.writerow(["" if v is None else json.dumps(jsonable(v)) if isinstance(v, dict | list)
                                 else jsonable(v) for v in row])
        written.append(path)
    return written

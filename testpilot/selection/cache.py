"""Parsed imports cached by git blob sha, so a warm run parses only files whose content changed.

``marshal`` is used because the entries are plain tuples of str/int/bool: it is several times faster
than JSON or pickle to load and, unlike pickle, cannot run code when a cache file is tampered with.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Callable
from pathlib import Path

from testpilot.selection.imports import ParsedImports, parse_imports

CACHE_FILE = "imports-v1.marshal"
GRAPH_FILE = "graph-v1.marshal"


class ImportCache:
    def __init__(self, cache_dir: Path | None) -> None:
        self.path = cache_dir / CACHE_FILE if cache_dir else None
        self.entries: dict[str, tuple] = {}
        self.parsed_count = 0
        self._dirty = False
        if self.path and self.path.is_file():
            try:
                loaded = marshal.loads(self.path.read_bytes())
            except (ValueError, EOFError, TypeError):
                loaded = {}  # a corrupt cache is rebuilt, not an error
            if isinstance(loaded, dict):
                self.entries = loaded

    def get_many(self, blobs: dict[str, str], read: Callable[[list[str]], dict[str, bytes]],
                 ) -> dict[str, ParsedImports]:
        """Path -> parsed imports for ``blobs`` (path -> sha); ``read`` fetches missing contents by sha."""
        out: dict[str, ParsedImports] = {}
        todo: dict[str, list[str]] = {}
        entries = self.entries
        for path, sha in blobs.items():
            hit = entries.get(sha)
            if hit is not None:
                out[path] = ParsedImports(*hit)
            else:
                todo.setdefault(sha, []).append(path)
        if todo:
            contents = read(list(todo))
            for sha, paths in todo.items():
                parsed = parse_imports(contents.get(sha, b""))
                self.parsed_count += 1
                entries[sha] = tuple(parsed)
                for path in paths:
                    out[path] = parsed
            self._dirty = True
        return out

    def load_graph(self) -> dict | None:
        """The resolved edges an earlier run saved (see ``build_graph``), or None."""
        if not self.path:
            return None
        try:
            loaded = marshal.loads((self.path.parent / GRAPH_FILE).read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            return None
        return loaded if isinstance(loaded, dict) else None

    def save_graph(self, resolved: dict, changed: bool) -> None:
        if self.path and resolved and changed:
            self._write(self.path.parent / GRAPH_FILE, marshal.dumps(resolved))

    def _write(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(target)  # atomic, so a concurrent reader never sees half a file

    def save(self) -> None:
        if not self.path or not self._dirty:
            return
        self._write(self.path, marshal.dumps(self.entries))
        self._dirty = False

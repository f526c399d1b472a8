"""The recorder's fingerprints and instrumentation, without pytest or git."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

from testpilot.recorder import MARK, MODULE, Recorder, source_fingerprints
from testpilot.selection.config import SelectionConfig
from testpilot.selection.coverage_map import _context_test
from testpilot.selection.discovery import AppSpec, PytestConfig

SOURCE = '''"""Doc."""
from __future__ import annotations

RATE = 2


def price(x):
    """Price."""
    return x * RATE


def other(y):
    def inner(z):
        return z + 1
    return inner(y)


class Cart:
    LIMIT = 3

    def total(self, items):
        return sum(price(i) for i in items)
'''


def fps(text: str) -> dict[str, str]:
    found = source_fingerprints(text)
    assert found is not None
    return found


def test_fingerprints_change_only_for_the_edited_function() -> None:
    before = fps(SOURCE)
    assert set(before) == {"price", "other", "other.<locals>.inner", "Cart.total", MODULE}
    after = fps(SOURCE.replace("return x * RATE", "return x * RATE + 1"))
    assert [q for q in before if before[q] != after[q]] == ["price"]


def test_nested_body_edit_leaves_the_outer_function_alone() -> None:
    before, after = fps(SOURCE), fps(SOURCE.replace("return z + 1", "return z + 2"))
    assert [q for q in before if before[q] != after[q]] == ["other.<locals>.inner"]


def test_comments_docstrings_and_moves_do_not_count_but_module_level_edits_do() -> None:
    before = fps(SOURCE)
    moved = SOURCE.replace('"""Price."""', '"""Price, in cents."""  # comment').replace("RATE = 2\n", "RATE = 2\n\n\n")
    assert fps(moved) == before
    constant = fps(SOURCE.replace("RATE = 2", "RATE = 3"))
    assert [q for q in before if before[q] != constant[q]] == [MODULE]
    class_body = fps(SOURCE.replace("LIMIT = 3", "LIMIT = 4"))
    assert [q for q in before if before[q] != class_body[q]] == [MODULE]


def test_instrumented_module_behaves_the_same_and_marks_what_ran(tmp_path: Path) -> None:
    rec = Recorder(str(tmp_path))
    path = tmp_path / "shop.py"
    path.write_text(SOURCE)
    code = rec.compile(str(path), "shop.py", SOURCE.encode())
    namespace: dict[str, object] = {"__name__": "shop"}
    exec(code, namespace)  # noqa: S102 - the module under test
    assert rec.take() == {f"shop.py::{MODULE}"}
    assert namespace["price"](2) == 4  # type: ignore[operator]
    assert namespace["price"].__doc__ == "Price."  # type: ignore[attr-defined]
    assert namespace["other"](1) == 2  # type: ignore[operator]
    assert rec.take() == {"shop.py::price", "shop.py::other", "shop.py::other.<locals>.inner"}
    assert getattr(builtins, MARK) is rec.hits
    assert rec.units["shop.py"] == fps(SOURCE)
    cached = Recorder(str(tmp_path), cache_dir=str(tmp_path / "cache"))
    first = cached.compile(str(path), "shop.py", SOURCE.encode())
    again = cached.compile(str(path), "shop.py", SOURCE.encode())
    assert ast.dump(ast.parse(SOURCE)) and first.co_consts == again.co_consts
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_coverage_context_keeps_a_pipe_inside_a_parametrised_id() -> None:
    assert _context_test("tests/test_a.py::test_x[a|b]|run") == "tests/test_a.py::test_x[a|b]"
    assert _context_test("tests/test_a.py::test_x[a|b]") == "tests/test_a.py::test_x[a|b]"
    assert _context_test("tests/test_a.py::test_y|setup") == "tests/test_a.py::test_y"


def test_norecursedirs_with_a_slash_matches_the_folder_path() -> None:
    config = PytestConfig(norecursedirs=["tests/data", "build"])
    app = AppSpec("default", "", [""], config, SelectionConfig.model_validate({}))
    assert app.is_test_file("tests/test_a.py")
    assert not app.is_test_file("tests/data/test_sample.py")
    assert not app.is_test_file("tests/data/deep/test_sample.py")
    assert not app.is_test_file("pkg/build/test_b.py")
    assert app.is_test_file("other/data/test_c.py")


def test_normalise_makes_paths_repository_relative_but_keeps_hosts_and_processes() -> None:
    import gzip
    import json

    from testpilot.selection.record import Part, merge, normalise

    raw = {"root": "/w/app", "rootdir": "/w/app", "keys": ["src/a.py::f", "data/x.txt", "127.0.0.1", "python"],
           "units": {"src/a.py": {"f": "1", MODULE: "2"}}, "uninstrumented": [],
           "session": {"spawned": [3]}, "tests": {"tests/test_a.py::test_f": {"units": [0], "opened": [1],
                                                                              "connected": [2]}}}
    part = normalise(gzip.compress(json.dumps(raw).encode()), commit="c0", app="web", name="p",
                     root_in_repo="apps/web", app_dir="apps/web")
    assert part.keys == ["apps/web/src/a.py::f", "apps/web/data/x.txt", "127.0.0.1", "python"]
    assert list(part.units) == ["apps/web/src/a.py"] and list(part.tests) == ["tests/test_a.py::test_f"]
    again = Part.from_bytes(part.to_bytes())
    record = merge("web", [again])
    assert record.deps("tests/test_a.py::test_f", "connected") == ["127.0.0.1"]
    assert record.deps("tests/test_a.py::test_f", "units") == ["apps/web/src/a.py::f"]

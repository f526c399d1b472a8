from __future__ import annotations

import pytest

from testpilot.selection.imports import _full_parse, parse_imports

CASES = [
    "import os\nimport a.b as ab, c\n",
    "from a.b import c, d as e\nfrom . import sibling\nfrom ..pkg.mod import thing\n",
    "def f():\n    import inner\n    return inner\n",
    "from x import (\n    one,\n    two,\n)\n",
    "from x import one, \\\n    two\n",
    "import a; import b\n",
    '"""Docs.\n\nNothing here imports.\n"""\nimport real\n',
]


@pytest.mark.parametrize("source", CASES)
def test_fast_scan_finds_the_same_imports_as_a_full_parse(source: str) -> None:
    fast = parse_imports(source)
    assert set(fast.imports) == set(_full_parse(source).imports)
    assert fast.imports


def test_import_after_colon_or_semicolon_falls_back_to_full_parse() -> None:
    source = "x = 1; import hidden\nif x: import other\n"
    names = {module for _, module, _ in parse_imports(source).imports}
    assert names == {"hidden", "other"}


def test_relative_import_levels() -> None:
    parsed = parse_imports("from . import a\nfrom ..b import c\n")
    assert (1, "", ("a",)) in parsed.imports
    assert (2, "b", ("c",)) in parsed.imports


def test_literal_dynamic_imports_are_imports_and_computed_ones_are_dynamic() -> None:
    literal = parse_imports("import importlib\nm = importlib.import_module('plugins.x')\n__import__('y')\n")
    assert {m for _, m, _ in literal.imports} >= {"plugins.x", "y"}
    assert not literal.dynamic
    computed = parse_imports("import importlib\ndef load(n):\n    return importlib.import_module(n)\n")
    assert computed.dynamic
    assert parse_imports("mod = __import__(name)\n").dynamic


def test_pytest_plugins_are_imports() -> None:
    parsed = parse_imports("pytest_plugins = ['fixtures.db', 'fixtures.web']\n")
    assert {m for _, m, _ in parsed.imports} == {"fixtures.db", "fixtures.web"}


def test_syntax_error_is_reported_not_raised() -> None:
    parsed = _full_parse("import os\ndef broken(:\n")
    assert parsed.error.startswith("SyntaxError")
    assert parsed.imports == ()


def test_backslash_continuation_before_import_keyword() -> None:
    parsed = parse_imports("from package.module \\\n    import name\n")
    assert parsed.imports == ((0, "package.module", ("name",)),)


def test_fast_scan_never_misses_an_import_in_real_code() -> None:
    from pathlib import Path

    import _pytest
    import pydantic

    import testpilot

    files = [f for package in (testpilot, _pytest, pydantic) for f in Path(package.__file__).parent.rglob("*.py")]
    assert len(files) > 200
    for file in files:
        text = file.read_text(errors="replace")
        assert set(parse_imports(text).imports) >= set(_full_parse(text).imports), file

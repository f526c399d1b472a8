"""Formats, selection.json, the markdown summary, explanations and the import cache."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from testpilot.errors import ConfigError
from testpilot.results import Selection
from testpilot.selection import (
    explain_test,
    format_selection,
    run_selection,
    select_tests,
    selection_table,
    summary_markdown,
    write_selection_json,
)

from .helpers import SHOP, Repo

PRICING = "RATE = 3\n\ndef price(x):\n    return x * RATE\n"


def pricing_change(repo: Repo) -> tuple[str, str]:
    base = repo.commit({**SHOP, "tests/test_odd name.py": "from shop import pricing\n\ndef test_o():\n    pass\n"})
    return base, repo.commit({"shop/pricing.py": PRICING})


def test_formats(repo: Repo, tmp_path: Path) -> None:
    base, head = pricing_change(repo)
    sel = select_tests(repo.path, base, head)
    args = format_selection(sel, "pytest-args")
    assert sorted(shlex.split(args)) == ["tests/test_cart.py", "tests/test_checkout.py", "tests/test_odd name.py"]
    assert Selection.model_validate_json(format_selection(sel, "json")) == sel
    text = format_selection(sel, "text")
    assert "selected 3, left out 0, skipped 2, unanalysable 0" in text
    assert "tests/test_checkout.py -> shop/checkout.py -> shop/cart.py -> shop/pricing.py (changed)" in text
    path = write_selection_json(sel, tmp_path / "out" / "selection.json")
    assert json.loads(path.read_text())["changed_files"] == ["shop/pricing.py"]
    with pytest.raises(ConfigError):
        format_selection(sel, "xml")


def test_summary_markdown_counts_and_reasons(repo: Repo) -> None:
    base, head = pricing_change(repo)
    md = summary_markdown(select_tests(repo.path, base, head, budget="1s"))
    assert "**1** selected, **2** left out, **2** skipped, **0** unanalysable" in md
    assert "time budget 1s" in md


def test_selection_table_rows(repo: Repo) -> None:
    base, head = pricing_change(repo)
    rows = selection_table(select_tests(repo.path, base, head, budget="1s"))
    assert [r["status"] for r in rows] == ["selected", "left out", "left out"]
    assert rows[0]["why"].startswith("tests/")


def test_explain_selected_test_lists_every_chain(repo: Repo) -> None:
    base = repo.commit(SHOP)
    head = repo.commit({"shop/pricing.py": PRICING, "shop/cart.py": SHOP["shop/cart.py"] + "\n# touched\n"})
    exp = explain_test(repo.path, "tests/test_checkout.py::test_pay", base, head)
    assert exp.status == "selected"
    assert sorted(" -> ".join(c) for c in exp.imports_reaching_changes) == [
        "tests/test_checkout.py -> shop/checkout.py -> shop/cart.py (changed)",
        "tests/test_checkout.py -> shop/checkout.py -> shop/cart.py -> shop/pricing.py (changed)"]
    assert "selected" in exp.text.splitlines()[0]


def test_explain_skipped_left_out_and_unknown(repo: Repo) -> None:
    base, head = pricing_change(repo)
    skipped = explain_test(repo.path, "tests/test_util.py", base, head)
    assert skipped.status == "skipped"
    assert "reach no changed file" in skipped.text
    left = explain_test(repo.path, "tests/test_cart.py", base, head, budget="1s")
    assert left.status == "left_out"
    assert left.reasons[-1].strategy == "left_out"
    unknown = explain_test(repo.path, "tests/nope.py", base, head)
    assert unknown.status == "unknown"


def test_warm_run_parses_only_changed_blobs(repo: Repo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    base = repo.commit(SHOP)
    head = repo.commit({"shop/pricing.py": PRICING})
    ws, cold = run_selection(repo.path, base, head, cache_dir=cache)
    assert ws.parsed_count == len([p for p in SHOP if p.endswith(".py")])
    ws, warm = run_selection(repo.path, base, head, cache_dir=cache)
    assert ws.parsed_count == 0
    assert warm == cold
    repo.write({"shop/util.py": "def noop():\n    return 7\n"})
    ws, _ = run_selection(repo.path, base, None, cache_dir=cache)
    assert ws.parsed_count == 1


def test_corrupt_cache_is_rebuilt(repo: Repo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "imports-v1.marshal").write_bytes(b"garbage")
    base = repo.commit(SHOP)
    head = repo.commit({"shop/pricing.py": PRICING})
    assert len(select_tests(repo.path, base, head, cache_dir=cache).selected) == 2


def test_warm_graph_cache_sees_new_edges_and_new_files(repo: Repo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    base = repo.commit(SHOP)
    select_tests(repo.path, base, base, cache_dir=cache)  # fills the cache at base
    head = repo.commit({"shop/util.py": "def noop():\n    return 9\n",
                        "shop/cart.py": "from shop import util\n" + SHOP["shop/cart.py"]})
    exp = explain_test(repo.path, "tests/test_checkout.py", base, head, cache_dir=cache)
    assert ["tests/test_checkout.py", "shop/checkout.py", "shop/cart.py", "shop/util.py (changed)"] in (
        exp.imports_reaching_changes)
    head2 = repo.commit({"shop/extra.py": "from shop import util\n",
                         "tests/test_extra.py": "import shop.extra\n\ndef test_e():\n    pass\n"})
    sel = select_tests(repo.path, head, head2, cache_dir=cache)
    assert {t.test_id for t in sel.selected} == {"tests/test_extra.py"}
    sel = select_tests(repo.path, base, head2, cache_dir=cache)
    assert "tests/test_extra.py" in {t.test_id for t in sel.selected}


def test_graph_cache_is_not_reused_when_the_set_of_files_changes(repo: Repo, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    base = repo.commit({**SHOP, "shop/__init__.py": "helpers = None\n",
                        "tests/test_a.py": "from shop import helpers\n\ndef test_a():\n    pass\n"})
    select_tests(repo.path, base, base, cache_dir=cache)
    # ``from shop import helpers`` named a variable; now it imports the new module.
    head = repo.commit({"shop/helpers.py": "X = 1\n"})
    sel = select_tests(repo.path, base, head, cache_dir=cache)
    chains = [r.text for t in sel.selected if t.test_id == "tests/test_a.py" for r in t.reasons]
    assert chains == ["tests/test_a.py -> shop/helpers.py (added)"]

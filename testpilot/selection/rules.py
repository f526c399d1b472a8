"""Configured rules: mapping rules (regex -> test patterns), always_run / never_run, unanalysable files.

Test patterns are git-style wildcards (``pathspec``), matched against test file paths relative to the
app; a pattern with ``::`` names one node id exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from testpilot.errors import ConfigError
from testpilot.selection.config import MappingRule, SelectionConfig

if TYPE_CHECKING:
    import pathspec


@lru_cache(maxsize=1024)
def _spec(patterns: tuple[str, ...]) -> pathspec.PathSpec:
    import pathspec  # only when a suite has patterns: zero-config `select` starts without it

    return pathspec.PathSpec.from_lines("gitignore", patterns)


def match_tests(patterns: list[str], test_files: list[str]) -> list[str]:
    """Test ids (files, or node ids for ``::`` patterns) that ``patterns`` select among ``test_files``."""
    if not patterns:
        return []
    if "*" in patterns:
        return list(test_files)
    nodes = [p for p in patterns if "::" in p]
    spec = _spec(tuple(p for p in patterns if "::" not in p))
    files = set(test_files)
    return [t for t in test_files if spec.match_file(t)] + [n for n in nodes if n.split("::")[0] in files]


def is_excluded(test_id: str, never_run: list[str]) -> str:
    """The never_run glob that excludes ``test_id``, or ''."""
    file = test_id.split("::")[0]
    for pattern in never_run:
        if pattern == test_id or _spec((pattern,)).match_file(file):
            return pattern
    return ""


@dataclass
class RuleHit:
    rule_id: str
    tests: list[str]


def rule_id(rule: MappingRule, position: int) -> str:
    return rule.id or f"mapping_rules[{position}]"


def mapping_hits(config: SelectionConfig, app: str, rel_path: str, test_files: list[str]) -> list[RuleHit]:
    """What each mapping rule whose regex matches ``rel_path`` selects."""
    hits = []
    for position, rule in enumerate(config.mapping_rules):
        try:
            match = re.search(rule.source_pattern, rel_path)
        except re.error as exc:
            raise ConfigError(f"invalid regex {rule.source_pattern!r}: {exc}",
                              field=f"selection.{app}.mapping_rules[{position}].source_pattern",
                              hint="fix the regular expression") from None
        if not match:
            continue
        targets = [rule.test_pattern] if isinstance(rule.test_pattern, str) else rule.test_pattern
        groups = match.groups()
        patterns = []
        for target in targets:
            for n, group in enumerate(groups, start=1):
                target = target.replace(f"{{{n}}}", group or "")
            patterns.append(target)
        hits.append(RuleHit(rule_id(rule, position), match_tests(patterns, test_files)))
    return hits


def unanalysable_rule(config: SelectionConfig, rel_path: str) -> tuple[int, list[str]] | None:
    """(position, test globs) of the first unanalysable rule matching ``rel_path``, if any."""
    for position, rule in enumerate(config.unanalysable):
        if _spec((rule.pattern,)).match_file(rel_path):
            return position, rule.selects
    return None

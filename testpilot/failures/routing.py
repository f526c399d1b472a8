"""Who owns a cluster: per-category routing rules and CODEOWNERS (test file and changed file in the traceback)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pathspec

from testpilot.errors import ConfigError


@dataclass(frozen=True, slots=True)
class OwnerRule:
    pattern: str
    owners: tuple[str, ...]
    line: int


class CodeOwners:
    """A parsed CODEOWNERS file. As on GitHub, the last matching line wins; patterns follow gitignore rules
    (matched with pathspec's gitignore patterns)."""

    def __init__(self, rules: Sequence[OwnerRule]) -> None:
        self.rules = list(rules)
        factory = pathspec.lookup_pattern("gitignore")
        self._compiled = [(factory(rule.pattern), rule) for rule in self.rules]

    @classmethod
    def parse(cls, text: str, *, source: str = "CODEOWNERS") -> CodeOwners:
        """Parse CODEOWNERS text. A line with a pattern but no owner clears ownership, as on GitHub."""
        rules: list[OwnerRule] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith("#"):
                continue
            pattern, *owners = line.split()
            if pattern.startswith("!"):
                raise ConfigError("negated patterns are not allowed in CODEOWNERS", file=source, line=number,
                                  hint="remove the '!' line; give the path a later rule instead")
            rules.append(OwnerRule(pattern.replace("\\ ", " "), tuple(owners), number))
        return cls(rules)

    def owners_of(self, path: str) -> tuple[str, ...]:
        """Owners of a repository-relative path; empty when no line claims it."""
        path = (path[2:] if path.startswith("./") else path).lstrip("/")
        found: tuple[str, ...] = ()
        for compiled, rule in self._compiled:
            if compiled.match_file(path) is not None and compiled.include:
                found = rule.owners
        return found


def repo_path(app_path: str, path: str) -> str:
    """A path relative to an app folder (as in pytest node ids) made relative to the repository root."""
    if not app_path or app_path in (".", "./"):
        return path
    return f"{app_path.rstrip('/')}/{path}"


@dataclass(frozen=True, slots=True)
class Route:
    """Where one cluster's notification goes, and why."""

    team: str
    reason: str
    owners: tuple[str, ...] = ()


def decide_route(category: str, routing: dict[str, str], *, test_files: Iterable[str] = (),
                 suspect_files: Iterable[str] = (), codeowners: CodeOwners | None = None,
                 default_team: str = "") -> Route:
    """Pick the receiver of a cluster.

    Order: a routing rule for the category; else the CODEOWNERS owner of the changed file in the
    traceback (the change most likely caused it); else the owner of the failing test files; else the
    default team. ``owners`` lists every owner found, for the payload's "owners" line.
    """
    owners: list[str] = []
    suspect_owner: tuple[str, ...] = ()
    test_owner: tuple[str, ...] = ()
    if codeowners is not None:
        for path in suspect_files:
            found = codeowners.owners_of(path)
            suspect_owner = suspect_owner or found
            owners.extend(o for o in found if o not in owners)
        for path in test_files:
            found = codeowners.owners_of(path)
            test_owner = test_owner or found
            owners.extend(o for o in found if o not in owners)
    if category in routing:
        return Route(routing[category], f"routing rule for category {category}", tuple(owners))
    if suspect_owner:
        return Route(suspect_owner[0], "CODEOWNERS of the changed file in the traceback", tuple(owners))
    if test_owner:
        return Route(test_owner[0], "CODEOWNERS of the failing test file", tuple(owners))
    return Route(default_team, "default team" if default_team else "nobody claims it", tuple(owners))

"""The change `testpilot demo` commits: a product bug in payment-service's fee calculation.

Usage: ``python demo_change.py <repo_dir>`` where ``<repo_dir>`` holds a copy of this examples folder.

It edits exactly one module, ``apps/payment/src/payment/fees.py``: the bank-transfer fee cap goes from
500 to 5000 minor units (a slipped zero). Exactly one test then fails, with a plain AssertionError:

    apps/payment  tests/test_fees.py::test_bank_transfer_fee_is_capped

Every other test in the suite still passes. Change-based selection maps the changed file to
``tests/test_fees.py`` through the rule ``src/payment/(.*).py -> tests/test_{1}.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

APP = "payment-service"
CHANGED_FILE = "apps/payment/src/payment/fees.py"
BROKEN_TEST = "tests/test_fees.py::test_bank_transfer_fee_is_capped"
BEFORE = "BANK_TRANSFER_FEE_CAP = 500\n"
AFTER = "BANK_TRANSFER_FEE_CAP = 5000\n"


def apply(repo_dir: str | Path) -> Path:
    """Apply the change under ``repo_dir``; return the changed file. Refuses to apply it twice."""
    path = Path(repo_dir) / CHANGED_FILE
    text = path.read_text()
    if text.count(BEFORE) != 1:
        raise SystemExit(f"{path}: expected exactly one line {BEFORE.strip()!r}; already changed?")
    path.write_text(text.replace(BEFORE, AFTER))
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {Path(argv[0]).name} <repo_dir>", file=sys.stderr)
        return 2
    changed = apply(argv[1])
    print(f"changed {changed}; expect {APP} {BROKEN_TEST} to fail")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

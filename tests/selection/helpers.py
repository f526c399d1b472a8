"""A real git repository in tmp_path, and a small shop project to select in."""

from __future__ import annotations

import subprocess
from pathlib import Path


class Repo:
    """A real git repository in a temporary folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "t@example.invalid")
        self.git("config", "user.name", "t")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True,  # noqa: S603
                              text=True).stdout.strip()

    def write(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def delete(self, *names: str) -> None:
        for name in names:
            (self.path / name).unlink()

    def commit(self, files: dict[str, str] | None = None, message: str = "c") -> str:
        if files:
            self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


SHOP = {
    "shop/__init__.py": "",
    "shop/pricing.py": "RATE = 2\n\ndef price(x):\n    return x * RATE\n",
    "shop/cart.py": "from shop.pricing import price\n\ndef total(items):\n    return sum(price(i) for i in items)\n",
    "shop/checkout.py": "from . import cart\n\ndef pay(items):\n    return cart.total(items)\n",
    "shop/util.py": "def noop():\n    return None\n",
    "tests/test_checkout.py": "from shop.checkout import pay\n\ndef test_pay():\n    assert pay([1]) == 2\n",
    "tests/test_cart.py": "import shop.cart\n\ndef test_total():\n    assert shop.cart.total([1, 2]) == 6\n",
    "tests/test_util.py": "from shop import util\n\ndef test_noop():\n    assert util.noop() is None\n",
    "tests/test_other.py": "def test_nothing():\n    assert True\n",
}

import subprocess
import sys

from tests.conftest import REPO


def test_importing_testpilot_does_not_import_prefect():
    code = ("import pkgutil, sys, testpilot\n"
            "for m in pkgutil.walk_packages(testpilot.__path__, 'testpilot.'):\n"
            "    __import__(m.name)\n"
            "bad = sorted(n for n in sys.modules if n == 'prefect' or n.startswith('prefect.'))\n"
            "print(len(list(pkgutil.walk_packages(testpilot.__path__))), bad[:3])\n"
            "sys.exit(1 if bad else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr

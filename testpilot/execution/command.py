"""Turn an app's ``test_command`` template into an argv list, never a shell string.

The template is split with shlex first and placeholders are substituted per token, so a test id
such as ``tests/t.py::test[$(rm -rf ~)]`` stays one argument and never meets a shell.
"""

from __future__ import annotations

import shlex

from testpilot.errors import ConfigError


def build_argv(template: str, *, tests: list[str], junit: str, app: str = "",
               plugins: tuple[str, ...] = ()) -> list[str]:
    """Expand ``{tests}`` (zero or more ids) and ``{junit}``; for pytest add ``--junitxml`` and plugins."""
    try:
        tokens = shlex.split(template)
    except ValueError as exc:
        raise ConfigError(f"cannot parse test_command: {exc}", field=f"apps.{app}.test_command",
                          hint="balance the quotes") from None
    if not tokens:
        raise ConfigError("test_command is empty", field=f"apps.{app}.test_command")
    argv: list[str] = []
    for token in tokens:
        if token == "{tests}":
            argv.extend(tests)
        elif "{junit}" in token:
            argv.append(token.replace("{junit}", junit))
        elif "{tests}" in token:
            raise ConfigError("{tests} must stand alone as one word", field=f"apps.{app}.test_command",
                              hint='write e.g. "pytest -q {tests}"')
        else:
            argv.append(token)
    at = _pytest_index(tokens)
    if "{junit}" not in template and at >= 0:
        # tee-sys: what a test prints reaches the live stream (and its monitor) as it happens, and the
        # JUnit report too; with pytest's default capture it would only show after the test failed.
        capture = [] if any(t in ("-s", "--capture=no") or t.startswith("--capture") for t in tokens) \
            else ["--capture=tee-sys"]
        argv[at + 1:at + 1] = [f"--junitxml={junit}", "-o", "junit_logging=all", "-o", "junit_family=xunit1",
                               "-p", "no:cacheprovider", *capture, *(a for p in plugins for a in ("-p", p))]
    return argv


def _pytest_index(tokens: list[str]) -> int:
    for i, token in enumerate(tokens):
        if token == "pytest" or token.endswith("/pytest"):
            return i
        if token == "-m" and i + 1 < len(tokens) and tokens[i + 1] == "pytest":
            return i + 1
    return -1

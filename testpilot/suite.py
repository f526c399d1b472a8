"""The suite model: what a ``testpilot.yaml`` declares, buildable from Python too.

``load_suite`` turns pydantic errors into ``ConfigError`` naming file, line and field, for example
``testpilot.yaml:14 apps.payment.test_command: field required``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from testpilot.environments.config import (
    DEFAULT_NODE_DEPLOYMENT,
    EnvironmentConfig,
    Execution,
    check_deployment,
)
from testpilot.errors import ConfigError
from testpilot.failures.config import FailuresConfig
from testpilot.scenarios.config import ScenarioConfig
from testpilot.selection.config import SelectionConfig
from testpilot.testdata.config import DatasetConfig

SUITE_FILE = "testpilot.yaml"


class HealthCheck(BaseModel):
    """How to tell an app that runs as a service is up: HTTP GET, a TCP connect, or a command."""

    model_config = ConfigDict(extra="forbid")
    http: str | None = None
    tcp: str | None = Field(None, description="host:port")
    command: str | None = None
    retries: int = Field(5, ge=0)
    backoff: float = Field(0.2, ge=0, description="First delay in seconds; doubles each retry.")


class ServiceProcess(BaseModel):
    """An app that is started as a process (HTTP on loopback) for scenario steps to call."""

    model_config = ConfigDict(extra="forbid")
    command: str = Field(description="Started in the app folder; {port} is a free port.")
    health: HealthCheck | None = None


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class AppConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str = Field(description="Folder of the app, relative to the suite file.")
    test_command: str = Field(description="Command line; {tests} becomes the selected test ids, quoted.")
    test_paths: list[str] = Field(default_factory=lambda: ["tests/"])
    requirements: str | None = Field(None, description="Requirements file; default requirements.txt if present.")
    owners: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    environment: str | None = Field(None, description="Pool to run in; default: the first declared.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    shards: int = Field(1, ge=1, le=64)
    timeout: float = Field(900, gt=0, description="Seconds per shard before it is killed.")
    service: ServiceProcess | None = None
    test_dependencies: dict[str, list[str]] = Field(
        default_factory=dict, description="Test node id -> node ids it depends on.")


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "testpilot"
    apps: dict[str, AppConfig]
    environments: dict[str, EnvironmentConfig] = Field(
        default_factory=lambda: {"local": EnvironmentConfig()})
    data: dict[str, DatasetConfig] = Field(default_factory=dict)
    selection: dict[str, SelectionConfig] = Field(default_factory=dict)
    scenarios: dict[str, ScenarioConfig] = Field(default_factory=dict)
    failures: FailuresConfig = Field(default_factory=FailuresConfig)
    execution: Execution = Field("threads", description="Where graph nodes run: 'threads' of the pipeline's "
                                 "process, or 'work-pool': each node a flow run of `node_deployment` on its work "
                                 "pool. An environment's own `execution` overrides it.")
    node_deployment: str = Field(DEFAULT_NODE_DEPLOYMENT,
                                 description="The node deployment ('flow/deployment') nodes run as for 'work-pool'.")
    _deployment = field_validator("node_deployment")(check_deployment)

    _root: Path = PrivateAttr(default=Path("."))
    _source: str = PrivateAttr(default="<python>")

    @model_validator(mode="after")
    def _references_exist(self) -> Suite:
        apps = set(self.apps)
        for name, app in self.apps.items():
            _check_commands(name, app)
            for dep in app.depends_on:
                if dep not in apps:
                    raise _RefError(("apps", name, "depends_on"), f"unknown app {dep!r}")
            if app.environment and app.environment not in self.environments:
                raise _RefError(("apps", name, "environment"), f"unknown environment {app.environment!r}")
        for name in self.selection:
            if name not in apps:
                raise _RefError(("selection", name), f"unknown app {name!r}")
        for sname, scenario in self.scenarios.items():
            for i, step in enumerate(scenario.steps):
                if step.app not in apps:
                    raise _RefError(("scenarios", sname, "steps", i, "app"), f"unknown app {step.app!r}")
        categories = {c.name for c in self.failures.categories}
        for category in self.failures.routing:
            if category not in categories and category not in _BUILTIN_CATEGORY_NAMES:
                raise _RefError(("failures", "routing", category), f"unknown category {category!r}")
        for i, category in enumerate(self.failures.issues.categories if self.failures.issues else []):
            if category not in categories and category not in _BUILTIN_CATEGORY_NAMES:
                raise _RefError(("failures", "issues", "categories", i), f"unknown category {category!r}")
        return self

    @property
    def root(self) -> Path:
        """Folder the app paths are relative to (the suite file's folder)."""
        return self._root

    @property
    def source(self) -> str:
        return self._source

    def app_dir(self, app: str) -> Path:
        return (self._root / self.apps[app].path).resolve()

    def environment_for(self, app: str) -> str:
        return self.apps[app].environment or next(iter(self.environments))

    def execution_of(self, app: str) -> Execution:
        """Where ``app``'s nodes run: its environment's ``execution``, else the suite's."""
        return self.environments[self.environment_for(app)].execution or self.execution

    def node_deployment_of(self, app: str) -> str:
        """The deployment ``app``'s nodes run as when ``execution_of(app)`` is 'work-pool'."""
        return self.environments[self.environment_for(app)].node_deployment or self.node_deployment

    def selection_for(self, app: str) -> SelectionConfig:
        return self.selection.get(app) or SelectionConfig()

    def line_of(self, *loc: str | int) -> int | None:
        """Line of a key path in the suite file (or of its nearest parent), for errors that point at config."""
        return _line_of(self, loc)

    def check_paths(self) -> None:
        """Raise ConfigError for an app folder that does not exist or lies outside the suite's repository."""
        for name, app in self.apps.items():
            if not self.app_dir(name).is_relative_to(self._root):
                raise ConfigError(f"folder {app.path!r} is outside the repository ({self._root})", file=self._source,
                                  line=_line_of(self, ("apps", name, "path")), field=f"apps.{name}.path",
                                  hint="an app's files are uploaded to test machines: keep it inside the "
                                       "folder of the suite file")
            if not self.app_dir(name).is_dir():
                raise ConfigError(f"folder {app.path!r} does not exist", file=self._source,
                                  line=_line_of(self, ("apps", name, "path")), field=f"apps.{name}.path",
                                  hint=f"create it or fix the path; it is relative to {self._root}")

    _lines: dict[tuple[Any, ...], int] = PrivateAttr(default_factory=dict)


def _check_commands(name: str, app: AppConfig) -> None:
    """What a machine would only refuse once provisioned: variable names, unparsable commands."""
    from testpilot.execution.command import build_argv

    for key in app.env:
        if not _ENV_NAME.match(key):
            raise _RefError(("apps", name, "env", key), f"environment variable name {key!r} is not valid "
                            "(letters, digits and underscores, not starting with a digit)")
    try:
        build_argv(app.test_command, tests=[], junit="junit.xml", app=name)
    except ConfigError as exc:
        raise _RefError(("apps", name, "test_command"), exc.message) from None
    if app.service is not None:
        try:
            if not shlex.split(app.service.command):
                raise ValueError("it is empty")
        except ValueError as exc:
            raise _RefError(("apps", name, "service", "command"), f"cannot parse the command: {exc}") from None


# Kept here so routing can name built-in categories without importing the failures engine.
_BUILTIN_CATEGORY_NAMES = {"product_bug", "test_bug", "environment", "test_data", "dependency",
                           "authentication", "flaky", "timeout", "unclassified"}


class _RefError(ValueError):
    def __init__(self, loc: tuple[Any, ...], message: str) -> None:
        super().__init__(message)
        self.loc, self.message = loc, message


def _line_map(text: str) -> dict[tuple[Any, ...], int]:
    """Map each key path in a YAML document to its 1-based line, from PyYAML's node marks."""
    lines: dict[tuple[Any, ...], int] = {}

    def walk(node: yaml.Node, path: tuple[Any, ...]) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = (*path, key.value)
                lines[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _line_of(suite_or_lines: Suite | dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    lines = suite_or_lines._lines if isinstance(suite_or_lines, Suite) else suite_or_lines
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return None


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def parse_suite(data: Any, *, source: str = "<python>", root: Path | None = None,
                lines: dict[tuple[Any, ...], int] | None = None) -> Suite:
    """Validate already-parsed suite data; errors name ``source``, the line and the field."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise ConfigError("the suite must be a mapping with an 'apps' section", file=source, line=1,
                          hint="see docs/configuration.md")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _RefError):
            loc, message = ctx_error.loc, ctx_error.message
        else:
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            message = err["msg"].lower().replace("value error, ", "")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(message + more, file=source, line=_line_of(lines, loc), field=_field_name(loc),
                          hint="see docs/configuration.md") from None
    suite._root = (root or Path.cwd()).resolve()
    suite._source = source
    suite._lines = lines
    return suite


def load_suite(path: str | Path = SUITE_FILE, *, check_paths: bool = True) -> Suite:
    """Load and validate a suite file. Raises ConfigError for anything wrong with it."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(f"not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})",
                          file=source, line=line, hint="save the suite file as UTF-8") from None
    except FileNotFoundError:
        raise ConfigError("suite file not found", file=source,
                          hint="pass --suite PATH or create testpilot.yaml") from None
    except OSError as exc:
        raise ConfigError(f"cannot read suite file: {exc.strerror}", file=source) from None
    try:
        data = yaml.safe_load(text)
        lines = _line_map(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"malformed YAML: {problem}", file=source,
                          line=mark.line + 1 if mark else None, hint="fix the YAML syntax") from None
    suite = parse_suite(data, source=source, root=path.resolve().parent, lines=lines)
    if check_paths:
        suite.check_paths()
    return suite

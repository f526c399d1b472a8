from pathlib import Path

import pytest

from testpilot.errors import ConfigError
from testpilot.suite import load_suite, parse_suite
from tests.conftest import FIXTURES

ISSUE_EXAMPLE = """\
apps:
  payment-service: {path: apps/payment, test_command: "pytest {tests}", owners: [payments-team]}
  user-service:    {path: apps/users,   test_command: "pytest {tests}"}
  web-frontend:    {path: apps/web,     test_command: "pytest {tests}", depends_on: [payment-service, user-service]}
environments:
  integration: {provider: local, pool_size: 2, services: {payment-db: {type: postgres}}}
data:
  users:           {count: 10, schema: {id: uuid, name: name, email: email, created_at: timestamp}}
  payment_methods: {count: 5, schema: {id: uuid, user_id: "ref:users.id", type: "enum:credit_card,paypal,bank_transfer", details: json}}
selection:
  payment-service: {strategy: change-based, test_paths: [tests/], mapping_rules: [{source_pattern: "src/payment/(.*).py", test_pattern: "tests/test_{1}.py"}]}
scenarios:
  end-to-end-payment:
    steps:
      - {app: user-service,    test: "tests/api/test_auth.py::test_login"}
      - {app: payment-service, test: "tests/api/test_payment.py::test_create_payment"}
      - {app: web-frontend,    test: "tests/test_confirmation.py::test_shows_payment"}
    data_flow:
      user_token: {from: "user-service.test_login.token", to: "payment-service.test_create_payment.auth_token"}
failures:
  categories:
    - {name: database_connection, patterns: ["ConnectionError", "database is unreachable"]}
    - {name: authentication,      patterns: ["Unauthorized", "Invalid token"]}
  routing: {database_connection: database-team, authentication: security-team}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "testpilot.yaml"
    path.write_text(text)
    return path


def test_issue_example_is_expressible(tmp_path):
    suite = load_suite(write(tmp_path, ISSUE_EXAMPLE), check_paths=False)
    assert suite.apps["web-frontend"].depends_on == ["payment-service", "user-service"]
    assert suite.environments["integration"].services["payment-db"].type == "postgres"
    assert suite.data["payment_methods"].fields["user_id"] == "ref:users.id"
    rule = suite.selection["payment-service"].mapping_rules[0]
    assert rule.test_pattern == "tests/test_{1}.py"
    flow = suite.scenarios["end-to-end-payment"].data_flow["user_token"]
    assert (flow.source, flow.target) == ("user-service.test_login.token", "payment-service.test_create_payment.auth_token")
    assert suite.failures.routing["authentication"] == "security-team"
    assert [s.step_name for s in suite.scenarios["end-to-end-payment"].steps] == \
        ["test_login", "test_create_payment", "test_shows_payment"]


def test_missing_field_names_file_line_and_field(tmp_path):
    text = ISSUE_EXAMPLE.replace('test_command: "pytest {tests}", owners', "owners")
    with pytest.raises(ConfigError) as err:
        load_suite(write(tmp_path, text), check_paths=False)
    assert str(err.value).startswith(f"{tmp_path / 'testpilot.yaml'}:2 apps.payment-service.test_command: field required")


def test_unknown_dependency_points_at_its_line(tmp_path):
    text = ISSUE_EXAMPLE.replace("depends_on: [payment-service,", "depends_on: [paymnt,")
    with pytest.raises(ConfigError) as err:
        load_suite(write(tmp_path, text), check_paths=False)
    assert err.value.line == 4 and err.value.field == "apps.web-frontend.depends_on"
    assert "unknown app 'paymnt'" in str(err.value)


def test_malformed_yaml_names_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_suite(write(tmp_path, "apps:\n  a: {path: x\n  b: 1\n"), check_paths=False)
    assert "malformed YAML" in err.value.message and err.value.line == 3


def test_missing_app_path(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_suite(write(tmp_path, ISSUE_EXAMPLE))
    assert err.value.field == "apps.payment-service.path" and err.value.line == 2


def test_wrong_type_and_unknown_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_suite(write(tmp_path, ISSUE_EXAMPLE.replace("pool_size: 2", "pool_size: many")), check_paths=False)
    assert err.value.field == "environments.integration.pool_size" and err.value.line == 6
    with pytest.raises(ConfigError) as err:
        load_suite(write(tmp_path, ISSUE_EXAMPLE.replace("owners: [payments-team]", "ownerz: [x]")), check_paths=False)
    assert err.value.field == "apps.payment-service.ownerz"


def test_buildable_from_python_and_fixture_loads():
    suite = parse_suite({"apps": {"a": {"path": ".", "test_command": "pytest {tests}"}}})
    assert suite.environment_for("a") == "local"
    mini = load_suite(FIXTURES / "minisuite" / "testpilot.yaml")
    assert mini.app_dir("beta").name == "beta" and mini.apps["beta"].shards == 2


def test_scenario_step_needs_test_or_command(tmp_path):
    text = ISSUE_EXAMPLE.replace('{app: web-frontend,    test: "tests/test_confirmation.py::test_shows_payment"}',
                                 "{app: web-frontend}")
    with pytest.raises(ConfigError) as err:
        load_suite(write(tmp_path, text), check_paths=False)
    assert "exactly one of 'test' or 'command'" in err.value.message and err.value.line == 17


@pytest.mark.parametrize("case", ["non-utf8", "env-name", "outside", "command"])
def test_validate_catches_before_provisioning(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    from flows.cli import main

    (tmp_path / "app").mkdir()
    app = {"non-utf8": b'  a: {path: app, test_command: "pytest \xff"}\n',
           "env-name": b'  a: {path: app, test_command: pytest, env: {"MY-VAR": "1"}}\n',
           "outside": b'  a: {path: ../../.., test_command: pytest}\n',
           "command": b'  a: {path: app, test_command: "pytest \\"x"}\n'}[case]
    expected = {"non-utf8": "suite.yaml:2: not valid UTF-8", "env-name": "apps.a.env.MY-VAR: environment variable "
                "name 'MY-VAR' is not valid", "outside": "apps.a.path: folder '../../..' is outside the repository",
                "command": "apps.a.test_command: cannot parse test_command"}[case]
    suite = tmp_path / "suite.yaml"
    suite.write_bytes(b"apps:\n" + app)
    assert main(["validate", "--suite", str(suite)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_explain_of_an_unknown_test_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main
    from tests.conftest import make_repo

    repo = make_repo(tmp_path)
    args = ["--repo", str(repo), "--suite", str(repo / "testpilot.yaml"), "--base", "HEAD", "--app", "gamma"]
    assert main(["explain", "tests/test_nope.py::test_x", *args]) == 2
    assert "not a known test" in capsys.readouterr().err
    assert main(["explain", "tests/test_maths.py::test_double", *args]) == 0


@pytest.mark.parametrize("value", ["0", "all", "-2", "2.5", "true"])
def test_max_members_must_be_a_positive_int_or_free(tmp_path: Path, value: str) -> None:
    text = ISSUE_EXAMPLE.replace("pool_size: 2", f"pool_size: 2, max_members: {value}")
    with pytest.raises(ConfigError) as err:
        load_suite(write(tmp_path, text), check_paths=False)
    assert err.value.field == "environments.integration.max_members" and err.value.line == 6
    assert "max_members must be an integer >= 1 or the string 'free'" in str(err.value)


def test_max_members_caps_at_pool_size_and_shards() -> None:
    def wanted(members: object, pool_size: int, shards: int) -> int:
        suite = parse_suite({"apps": {"a": {"path": ".", "test_command": "pytest {tests}"}},
                             "environments": {"p": {"pool_size": pool_size, "max_members": members}}})
        return suite.environments["p"].members_wanted(shards)

    assert wanted(1, 4, 8) == 1  # the default: one environment per run, as before
    assert (wanted(3, 4, 8), wanted(8, 4, 8), wanted(4, 4, 2)) == (3, 4, 2)
    assert (wanted("free", 4, 8), wanted("free", 4, 3), wanted("free", 4, 0)) == (4, 3, 1)

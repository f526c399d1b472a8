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

"""Which server backs a postgres/mysql service: blocks, settings, or a loudly noted SQLite stand-in."""

import pytest

from testpilot.environments.config import EnvironmentConfig, ServiceConfig
from testpilot.environments.servers import plan_servers, wanted_blocks
from testpilot.errors import ConfigError

PG = "postgresql+psycopg://u:secret@db:5432/postgres"


def pool(**services: ServiceConfig) -> EnvironmentConfig:
    return EnvironmentConfig(services=services)


def test_blocks_are_used_by_name_then_by_default_name():
    config = pool(a=ServiceConfig(type="postgres", server="shared-pg"), b=ServiceConfig(type="postgres"),
                  c=ServiceConfig(type="sqlite"), d=ServiceConfig(type="postgres", url="postgresql://own"))
    assert wanted_blocks(config) == ["shared-pg", "testpilot-postgres"]
    resolved, notes = plan_servers("p", config, {"shared-pg": ("postgres", PG), "testpilot-postgres": ("postgres", "x")},
                                   {"postgres": "from-settings"})
    assert [resolved.services[s].url for s in "abcd"] == [PG, "x", None, "postgresql://own"]
    assert notes == []


def test_settings_url_comes_after_the_default_block():
    resolved, notes = plan_servers("p", pool(db=ServiceConfig(type="mysql")), {}, {"mysql": "mysql+pymysql://m"})
    assert resolved.services["db"].url == "mysql+pymysql://m" and notes == []


def test_sqlite_standing_in_is_said_loudly():
    resolved, notes = plan_servers("local", pool(db=ServiceConfig(type="postgres")), {}, {"postgres": None})
    assert resolved.services["db"].url is None
    [note] = notes
    assert note.startswith("WARNING: SQLite stands in for the postgres service 'db' of pool 'local'")
    assert "testpilot-postgres" in note and "TESTPILOT_POSTGRES_URL" in note


def test_a_named_block_that_is_missing_or_of_the_wrong_kind_is_a_config_error():
    config = pool(db=ServiceConfig(type="postgres", server="typo"))
    with pytest.raises(ConfigError) as err:
        plan_servers("local", config, {}, {"postgres": "postgresql://fallback"})  # no silent fallback either
    assert err.value.field == "environments.local.services.db.server" and "'typo'" in str(err.value)
    with pytest.raises(ConfigError, match="is a mysql server"):
        plan_servers("local", config, {"typo": ("mysql", "mysql+pymysql://m")}, {})

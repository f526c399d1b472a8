"""Process-wide settings, from ``TESTPILOT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TestpilotSettings(BaseSettings):
    __test__ = False
    model_config = SettingsConfigDict(env_prefix="TESTPILOT_", extra="ignore")

    home: Path = Field(Path.home() / ".cache" / "testpilot",
                       description="Where local environments, venvs and caches live.")
    postgres_url: str | None = Field(None, description="Admin URL used to create per-environment databases.")
    mysql_url: str | None = Field(None, description="Admin URL used to create per-environment databases.")
    pass_env: str = Field("", description="Comma-separated names of worker variables passed to test commands.")
    results_dir: Path = Field(Path("results"), description="Where junit.xml and report.json are written.")


def get_settings() -> TestpilotSettings:
    return TestpilotSettings()

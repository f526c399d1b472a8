"""Process-wide settings, from ``TESTPILOT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class TestpilotSettings(BaseSettings):
    __test__ = False
    model_config = SettingsConfigDict(env_prefix="TESTPILOT_", extra="ignore")

    home: Path = Field(Path.home() / ".cache" / "testpilot",
                       description="Where local environments, venvs and caches live.")
    postgres_url: str | None = Field(None, description="Admin URL used to create per-environment databases.")
    mysql_url: str | None = Field(None, description="Admin URL used to create per-environment databases.")
    pass_env: str = Field("", description="Comma-separated names of worker variables passed to test commands.")
    worker_host: str = Field("", description="This machine's name in local pools' locks (default: the host name).")
    results_storage: str = Field("local-file-system/testpilot-results",
                                 description="Storage block (type/name) that deployment runs copy junit.xml and "
                                             "report.json to, for `testpilot ci` on another machine.")
    results_dir: Path = Field(Path(), description="Where junit.xml and report.json are written (a folder per "
                              "run). Default: <home>/results, outside the repository, so a later working-tree "
                              "selection does not see them as a change.")
    zombie_after: float | None = Field(
        None, gt=0, description="Seconds without a heartbeat after which a Running pipeline run is declared dead "
                                "(Crashed) by the reaper and `data gc`; default three heartbeat intervals "
                                "(PREFECT_FLOWS_HEARTBEAT_FREQUENCY).")

    @model_validator(mode="after")
    def _results_under_home(self) -> TestpilotSettings:
        if self.results_dir == Path():
            self.results_dir = self.home / "results"
        return self


def get_settings() -> TestpilotSettings:
    return TestpilotSettings()

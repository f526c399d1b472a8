"""A database server that environments create their per-run databases on."""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class DatabaseServer(Block):
    """Admin connection to a PostgreSQL or MySQL server; the URL (with password) stays secret."""

    _block_type_name = "Testpilot Database Server"
    kind: Literal["postgres", "mysql"] = Field("postgres", description="Which services this server backs.")
    url: SecretStr = Field(description="SQLAlchemy admin URL, e.g. postgresql+psycopg://user:pw@host:5432/postgres.")

    def get_url(self) -> str:
        return self.url.get_secret_value()

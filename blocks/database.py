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


def server_urls() -> list[str]:
    """Every database server the clean-up sweeps visit: the worker's ``TESTPILOT_*_URL`` settings and
    each saved DatabaseServer block (a run's databases may live on any of them)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    from testpilot.settings import get_settings

    settings = get_settings()
    urls = [u for u in (settings.postgres_url, settings.mysql_url) if u]
    with get_client(sync_client=True) as client:
        try:
            docs = client.read_block_documents_by_type(DatabaseServer.get_block_type_slug(), include_secrets=True)
        except (ObjectNotFound, PrefectHTTPStatusError) as exc:  # the block type was never registered: no blocks
            if isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code != 404:
                raise
            docs = []
    urls += [str(doc.data["url"]) for doc in docs if doc.data.get("url")]
    return list(dict.fromkeys(urls))

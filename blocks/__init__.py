"""Prefect Blocks: settings and SecretStr secrets, with factory methods. No I/O at import."""

from blocks.database import DatabaseServer

__all__ = ["DatabaseServer"]

"""Prefect Blocks: settings and SecretStr secrets, with factory methods. No I/O at import."""

from blocks.database import DatabaseServer
from blocks.github import GitHubIssues
from blocks.notifications import SmtpEmail

__all__ = ["DatabaseServer", "GitHubIssues", "SmtpEmail"]

"""Prefect Blocks: settings and SecretStr secrets, with factory methods. No I/O at import."""

from blocks.database import DatabaseServer
from blocks.environments import (
    EnvironmentPool,
    HetznerProject,
    ProxmoxCluster,
    SSHMachine,
    provider_from_blocks,
)
from blocks.github import GitHubIssues
from blocks.notifications import SmtpEmail

__all__ = ["DatabaseServer", "EnvironmentPool", "GitHubIssues", "HetznerProject", "ProxmoxCluster", "SSHMachine",
           "SmtpEmail", "provider_from_blocks"]

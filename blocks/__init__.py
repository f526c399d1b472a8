"""Prefect Blocks: settings and SecretStr secrets, with factory methods. No I/O at import."""

from blocks.database import DatabaseServer
from blocks.environments import (
           EnvironmentPool,
           HetznerProject,
           ProxmoxCluster,
           SSHMachine,
           provider_from_blocks,
)

__all__ = ["DatabaseServer", "EnvironmentPool", "HetznerProject", "ProxmoxCluster", "SSHMachine",
           "provider_from_blocks"]

"""Environment pool declarations (the suite's ``environments`` section)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from testpilot.execution.monitor import MonitorConfig

Execution = Literal["threads", "work-pool"]
DEFAULT_NODE_DEPLOYMENT = "testpilot-node/node"


def check_deployment(value: str | None) -> str | None:
    """A node deployment is named ``<flow name>/<deployment name>``, as ``prefect deployment run`` takes it."""
    if value is not None and (value.count("/") != 1 or not all(p.strip() for p in value.split("/"))):
        raise ValueError(f"{value!r} is not a deployment name: write it as <flow name>/<deployment name>, "
                         f"e.g. {DEFAULT_NODE_DEPLOYMENT!r}")
    return value


class ServiceConfig(BaseModel):
    """A database an environment provides to the apps."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["sqlite", "postgres", "mysql"] = "sqlite"
    url: str | None = Field(None, description="Admin URL of the server. Prefer a DatabaseServer block (server).")
    server: str | None = Field(None, description="Name of a DatabaseServer block holding the server's admin URL; "
                                                 "default: the block 'testpilot-<type>' when it exists, then "
                                                 "TESTPILOT_<TYPE>_URL, then SQLite with a warning.")


class EnvironmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: Literal["local", "ssh", "proxmox", "hetzner"] = "local"
    pool_size: int = Field(1, ge=1, le=100, description="Environments in the pool; also the lock's slots.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Provider settings, e.g. a block name.")
    services: dict[str, ServiceConfig] = Field(default_factory=dict)
    acquire_timeout: float = Field(300, gt=0, description="Seconds to wait for a free environment.")
    monitor: MonitorConfig = Field(default_factory=MonitorConfig,
                                   description="Patterns watched in the live output (abort, warn, progress).")
    lease_seconds: float = Field(60, ge=60, description="A dead holder's slot comes back after this long; "
                                 "Prefect's server accepts leases of 60 s or more.")
    max_members: int | Literal["free"] = Field(
        1, description="Members of the pool one run may use at once, its shards spread over them: an int >= 1 "
                       "(1: one environment per run), or 'free': as many as are free when the run starts. "
                       "Never more than pool_size or the run's shard count; extra members are never waited for.")

    @field_validator("max_members", mode="before")
    @classmethod
    def _members(cls, value: Any) -> Any:
        if value == "free" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return value
        raise ValueError(f"max_members must be an integer >= 1 or the string 'free', not {value!r}")

    def members_wanted(self, shards: int) -> int:
        """How many members a run with ``shards`` shard nodes in this pool asks for (the first one waits,
        the others are taken only when free)."""
        limit = self.pool_size if self.max_members == "free" else min(self.max_members, self.pool_size)
        return max(1, min(limit, shards))

    execution: Execution | None = Field(None, description="Where this pool's graph nodes run: 'threads' of the "
                                        "pipeline's own process, or 'work-pool' (each node a flow run of the node "
                                        "deployment); default: the suite's `execution`.")
    node_deployment: str | None = Field(None,
                                        description="The node deployment ('flow/deployment') for 'work-pool'; "
                                                    "default: the suite's `node_deployment`.")
    _deployment = field_validator("node_deployment")(check_deployment)

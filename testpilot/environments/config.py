"""Environment pool declarations (the suite's ``environments`` section)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from testpilot.execution.monitor import MonitorConfig


class ServiceConfig(BaseModel):
    """A database an environment provides to the apps."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["sqlite", "postgres", "mysql"] = "sqlite"
    url: str | None = Field(None, description="Admin URL of the server; defaults to TESTPILOT_<TYPE>_URL, "
                                              "falling back to SQLite when neither is set.")


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

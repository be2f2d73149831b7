"""Configuration from the environment (contract section 1). Nothing else reads os.environ."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.identity import PRIVATE_WORKER_USER, PUBLIC_WORKER_USER
from shared.topology import WorkQueueType

DEFAULT_RULES_FILE = Path(__file__).resolve().parent.parent / "services" / "router" / "rules.toml"


class BrokerSettings(BaseSettings):
    """What every service needs to reach RabbitMQ."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    amqp_url: str = Field(default="amqp://guest:guest@localhost:5672/", alias="AMQP_URL")
    prefetch: int = Field(default=32, ge=1, alias="PREFETCH")
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    metrics_port: int | None = Field(default=None, alias="METRICS_PORT")
    drain_seconds: float = Field(default=25.0, gt=0, le=30, alias="DRAIN_SECONDS")
    work_queue_type: WorkQueueType = Field(default=WorkQueueType.CLASSIC, alias="WORK_QUEUE_TYPE")
    # whose messages speak for which site (shared/identity.py); other users: unrestricted
    public_worker_user: str = Field(default=PUBLIC_WORKER_USER, alias="PUBLIC_WORKER_USER")
    private_worker_user: str = Field(default=PRIVATE_WORKER_USER, alias="PRIVATE_WORKER_USER")


class RouterSettings(BrokerSettings):
    routing_rules: Path = Field(default=DEFAULT_RULES_FILE, alias="ROUTING_RULES")
    state_dir: Path = Field(default=Path("var/router"), alias="ROUTER_STATE_DIR")
    backlog_max_age_seconds: float = Field(default=0.5, gt=0, le=1, alias="BACKLOG_MAX_AGE_SECONDS")


class WorkerSettings(BrokerSettings):
    concurrency: int = Field(default=4, ge=1, alias="WORKER_CONCURRENCY")
    retry_base_seconds: float = Field(default=1.0, gt=0, alias="RETRY_BASE_SECONDS")
    retry_max_seconds: float = Field(default=300.0, gt=0, alias="RETRY_MAX_SECONDS")
    worker_name: str | None = Field(default=None, alias="WORKER_NAME")
    executor: str = Field(default="inprocess", pattern="^(inprocess|http)$", alias="EXECUTOR")
    executor_url: str | None = Field(default=None, alias="EXECUTOR_URL")
    executor_token: SecretStr | None = Field(default=None, alias="EXECUTOR_TOKEN")
    executor_token_file: Path | None = Field(default=None, alias="EXECUTOR_TOKEN_FILE")
    executor_poll_seconds: float = Field(default=0.2, gt=0, alias="EXECUTOR_POLL_SECONDS")
    handlers: str = Field(default="", alias="HYBRIDQ_HANDLERS")
    heartbeat_seconds: float = Field(default=5.0, gt=0, le=60, alias="HEARTBEAT_SECONDS")
    lease_after_seconds: float = Field(default=1500.0, gt=0, alias="LEASE_AFTER_SECONDS")
    lease_seconds: float = Field(default=60.0, gt=0, alias="LEASE_SECONDS")

    @property
    def handler_modules(self) -> list[str]:
        """HYBRIDQ_HANDLERS: comma-separated modules that register job handlers."""
        return [m.strip() for m in self.handlers.split(",") if m.strip()]


class StatusSettings(BrokerSettings):
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@localhost:5432/hybridq", alias="DATABASE_URL"
    )
    http_host: str = Field(default="127.0.0.1", alias="STATUS_HTTP_HOST")
    http_port: int = Field(default=8000, alias="STATUS_HTTP_PORT")
    api_token: SecretStr | None = Field(default=None, alias="API_TOKEN")
    admin_token: SecretStr | None = Field(default=None, alias="ADMIN_TOKEN")
    routing_rules: Path = Field(default=DEFAULT_RULES_FILE, alias="ROUTING_RULES")
    batch_size: int = Field(default=200, ge=1, alias="PROJECTION_BATCH_SIZE")
    batch_wait_seconds: float = Field(default=0.02, ge=0, alias="PROJECTION_BATCH_WAIT_SECONDS")
    stats_max_age_seconds: float = Field(default=1.0, gt=0, le=1, alias="STATS_MAX_AGE_SECONDS")
    schedule_poll_seconds: float = Field(default=0.5, gt=0, le=60, alias="SCHEDULE_POLL_SECONDS")
    # how long a delivery is held while the database is away before it is handed back
    db_hold_seconds: float = Field(default=240.0, gt=0, le=1200, alias="DB_HOLD_SECONDS")
    retention_days: float = Field(default=30.0, gt=0, alias="RETENTION_DAYS")
    retention_interval_seconds: float = Field(
        default=300.0, gt=0, alias="RETENTION_INTERVAL_SECONDS"
    )
    group_sweep_seconds: float = Field(default=5.0, gt=0, alias="GROUP_SWEEP_SECONDS")
    outbox_poll_seconds: float = Field(default=1.0, gt=0, alias="OUTBOX_POLL_SECONDS")
    max_streams: int = Field(default=100, ge=1, alias="MAX_STREAMS")
    stream_idle_seconds: float = Field(default=300.0, gt=0, alias="STREAM_IDLE_SECONDS")
    stream_unknown_seconds: float = Field(default=10.0, gt=0, alias="STREAM_UNKNOWN_SECONDS")
    stream_poll_seconds: float = Field(default=0.25, gt=0, alias="STREAM_POLL_SECONDS")
    publish_timeout_seconds: float = Field(default=5.0, gt=0, alias="PUBLISH_TIMEOUT_SECONDS")


S = TypeVar("S", bound=BrokerSettings)


def load(kind: type[S]) -> S:
    """Settings from the environment, then from secret files.

    With HYBRIDQ_SECRETS_DIR set (e.g. /run/secrets), a file there named after a variable
    (AMQP_URL, DATABASE_URL, API_TOKEN, ADMIN_TOKEN, EXECUTOR_TOKEN) supplies its value
    when the environment does not, so passwords need not be in the environment.
    """
    secrets_dir = os.environ.get("HYBRIDQ_SECRETS_DIR")
    return kind(_secrets_dir=secrets_dir) if secrets_dir else kind()

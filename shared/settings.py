"""Configuration from the environment (contract section 1). Nothing else reads os.environ."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self, TypeVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared import tls
from shared.identity import PRIVATE_WORKER_USER, PUBLIC_WORKER_USER
from shared.topology import WorkQueueType

DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@localhost:5432/hybridq"
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
    health_port: int | None = Field(default=None, alias="HEALTH_PORT")
    """Router and workers: serve /healthz and /readyz on this port (from the event loop)."""
    health_host: str = Field(default="0.0.0.0", alias="HEALTH_HOST")
    # TLS (amqps:// URLs): the CA that signed the broker's certificate (unset: the
    # system's), and this service's own certificate and key when the broker asks for one
    amqp_ca_file: Path | None = Field(default=None, alias="AMQP_CA_FILE")
    amqp_cert_file: Path | None = Field(default=None, alias="AMQP_CERT_FILE")
    amqp_key_file: Path | None = Field(default=None, alias="AMQP_KEY_FILE")

    @model_validator(mode="after")
    def _tls_files_in_urls(self) -> Self:
        """Every `amqps://` node URL carries the TLS files (shared/tls.py), so each
        connection made from `amqp_url` verifies the broker with them."""
        self.amqp_url = tls.with_files(
            self.amqp_url, ca=self.amqp_ca_file, cert=self.amqp_cert_file, key=self.amqp_key_file
        )
        return self


class RouterSettings(BrokerSettings):
    routing_rules: Path = Field(default=DEFAULT_RULES_FILE, alias="ROUTING_RULES")
    database_url: str = Field(default=DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    """Where the de-duplication ledger lives (table `router_ledger`, migration 0004)."""
    retention_days: float = Field(default=30, gt=0, alias="RETENTION_DAYS")
    claim_lease_seconds: float = Field(default=15.0, gt=0, alias="ROUTER_CLAIM_LEASE_SECONDS")
    db_hold_seconds: float = Field(default=60.0, gt=0, alias="ROUTER_DB_HOLD_SECONDS")
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
    database_url: str = Field(default=DEFAULT_DATABASE_URL, alias="DATABASE_URL")
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
    # /events/stream: a comment line this often while no event comes (proxies keep it open)
    stream_heartbeat_seconds: float = Field(
        default=15.0, gt=0, le=3600, alias="STREAM_HEARTBEAT_SECONDS"
    )
    publish_timeout_seconds: float = Field(default=5.0, gt=0, alias="PUBLISH_TIMEOUT_SECONDS")
    # webhooks (contract §5.2): hosts a webhook may reach although they resolve to a
    # loopback, private, link-local or multicast address (comma-separated names/addresses)
    webhook_allowed_hosts: str = Field(default="", alias="WEBHOOK_ALLOWED_HOSTS")
    webhook_retry_base_seconds: float = Field(default=1.0, gt=0, alias="WEBHOOK_RETRY_BASE_SECONDS")
    webhook_retry_max_seconds: float = Field(default=900.0, gt=0, alias="WEBHOOK_RETRY_MAX_SECONDS")
    webhook_give_up_seconds: float = Field(default=86400.0, gt=0, alias="WEBHOOK_GIVE_UP_SECONDS")
    webhook_concurrency: int = Field(default=4, ge=1, le=100, alias="WEBHOOK_CONCURRENCY")
    webhook_lease_seconds: float = Field(default=30.0, ge=11, alias="WEBHOOK_LEASE_SECONDS")
    webhook_poll_seconds: float = Field(default=0.5, gt=0, le=60, alias="WEBHOOK_POLL_SECONDS")

    @property
    def allowed_webhook_hosts(self) -> list[str]:
        return [h.strip() for h in self.webhook_allowed_hosts.split(",") if h.strip()]


S = TypeVar("S", bound=BrokerSettings)

SECRET_FILES = ("AMQP_CA_FILE", "AMQP_CERT_FILE", "AMQP_KEY_FILE")
"""Settings that name a file: in HYBRIDQ_SECRETS_DIR, the file of that name is the file."""


def load(kind: type[S]) -> S:
    """Settings from the environment, then from secret files.

    With HYBRIDQ_SECRETS_DIR set (e.g. /run/secrets), a file there named after a variable
    (AMQP_URL, DATABASE_URL, API_TOKEN, ADMIN_TOKEN, EXECUTOR_TOKEN) supplies its value
    when the environment does not, so passwords need not be in the environment. For the
    variables that name a file (SECRET_FILES: the broker's CA, this service's certificate
    and key), the file there of that name is itself the CA, certificate or key.
    """
    secrets_dir = os.environ.get("HYBRIDQ_SECRETS_DIR")
    if not secrets_dir:
        return kind()
    in_environment = {name.upper() for name in os.environ}
    files = {
        name: Path(secrets_dir) / name
        for name in SECRET_FILES
        if name not in in_environment and (Path(secrets_dir) / name).is_file()
    }
    # given by name: pydantic-settings would otherwise read the file's content as the path
    return kind(_secrets_dir=secrets_dir, **files)  # type: ignore[arg-type]

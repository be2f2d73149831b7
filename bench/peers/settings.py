"""Where the peers' workers connect: set by the bench for each throw-away vhost/database."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class PeerSettings(BaseSettings):
    amqp_url: str = Field(default="amqp://guest:guest@127.0.0.1:5672/", alias="BENCH_AMQP_URL")
    pg_dsn: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres", alias="BENCH_PG_DSN"
    )

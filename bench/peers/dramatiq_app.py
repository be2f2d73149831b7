"""Dramatiq as issue 9 describes it: two actors on queues `public`/`private`, publisher
confirms, a middleware writing STARTED and SUCCESS rows into Postgres; run by
`dramatiq bench.peers.dramatiq_app --processes 2 --threads 4`.

Dramatiq's Results middleware has no Postgres backend (Redis, Memcached), so the honest
equivalent is this middleware: STARTED before the actor runs, SUCCESS with the result after,
each an autocommitted write from the worker thread, before Dramatiq acks the message.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import dramatiq
import psycopg
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.middleware import Middleware

from bench.peers.settings import PeerSettings

settings = PeerSettings()

TABLE = """
CREATE TABLE IF NOT EXISTS dramatiq_results (
    message_id text PRIMARY KEY,
    status text NOT NULL,
    result jsonb,
    started_at timestamptz,
    finished_at timestamptz
)
"""


class ResultRows(Middleware):
    """STARTED and SUCCESS rows, one connection per worker thread."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.local = threading.local()

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.dsn, autocommit=True)
            self.local.conn = conn
        return conn

    def before_process_message(self, broker: Any, message: Any) -> None:
        self._conn().execute(
            "INSERT INTO dramatiq_results (message_id, status, started_at) "
            "VALUES (%s, 'STARTED', clock_timestamp()) ON CONFLICT (message_id) "
            "DO UPDATE SET status = 'STARTED', started_at = clock_timestamp()",
            (message.message_id,),
        )

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        if exception is None:
            self._conn().execute(
                "UPDATE dramatiq_results SET status = 'SUCCESS', result = %s, "
                "finished_at = clock_timestamp() WHERE message_id = %s",
                (json.dumps(result), message.message_id),
            )


broker = RabbitmqBroker(url=settings.amqp_url, confirm_delivery=True)
broker.add_middleware(ResultRows(settings.pg_dsn))
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="public", actor_name="noop_public")
def noop_public() -> dict[str, Any]:
    return {}


@dramatiq.actor(queue_name="private", actor_name="noop_private")
def noop_private() -> dict[str, Any]:
    return {}

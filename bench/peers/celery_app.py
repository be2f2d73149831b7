"""Celery as issue 9 describes it: routed to a public or private queue, `task_track_started`,
the database result backend on Postgres; run by `celery -A bench.peers.celery_app worker -c 2`.

Its best honest configuration: JSON, no gossip/mingle/heartbeat chatter (the worker flags),
a deeper prefetch than the default 4, Celery's default early ack kept (its users' default).
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from bench.peers.settings import PeerSettings

settings = PeerSettings()
app = Celery(
    "bench",
    broker=settings.amqp_url,
    backend="db+" + settings.pg_dsn.replace("postgresql://", "postgresql+psycopg://", 1),
)
app.conf.update(
    task_track_started=True,
    task_routes={"bench.noop": {"queue": "private"}},
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_prefetch_multiplier=16,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_redirect_stdouts=False,
)


@app.task(name="bench.noop")  # type: ignore[untyped-decorator]
def noop() -> dict[str, Any]:
    return {}


TASK = "bench.noop"

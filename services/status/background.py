"""The status service's background tasks, safe with several replicas.

The outbox relay runs on every replica (rows are claimed with SKIP LOCKED); the group sweep
and retention run on the one replica holding the leadership lock (leader.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.status import outbox, retention, saga
from services.status.leader import Leadership, every
from shared.bus import Bus
from shared.settings import StatusSettings
from shared.tasks import cancel_and_wait


@dataclass
class Background:
    leadership: Leadership
    tasks: list[asyncio.Task[None]]


def start_background(engine: AsyncEngine, bus: Bus, settings: StatusSettings) -> Background:
    leadership = Leadership(engine)
    keep = timedelta(days=settings.retention_days)

    async def relay() -> None:
        await outbox.relay(engine, bus)

    async def sweep() -> None:
        await saga.sweep(engine)

    async def purge() -> None:
        await retention.purge(engine, keep)

    tasks = [
        asyncio.create_task(every(settings.outbox_poll_seconds, relay, name="outbox relay")),
        asyncio.create_task(
            every(settings.group_sweep_seconds, sweep, leadership, name="group sweep")
        ),
        asyncio.create_task(
            every(settings.retention_interval_seconds, purge, leadership, name="retention")
        ),
    ]
    return Background(leadership, tasks)


async def stop_background(background: Background) -> None:
    await cancel_and_wait(background.tasks)
    await background.leadership.release()

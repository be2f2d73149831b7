"""Schedules: create, pause or resume, delete, and fire what is due.

Firing needs no leader: for each due schedule a transaction moves `next_run_at` on with a
compare-and-set (of replicas racing for one fire time exactly one claim succeeds) and, only
then, records the firing and queues its JobSubmitted in the outbox. The job id is derived
from the schedule and the fire time (`domain.schedules.job_id_for`), so however often it is
published, the router runs it once. Catch-up: a schedule long past due fires once, for its
latest missed fire time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import ValidationError

from services.status.domain.schedules import BadCadence, Cadence, job_id_for
from services.status.service_layer.unit_of_work import Schedule, UnitOfWork, UnitOfWorkFactory
from shared import messages
from shared.contracts.jobs import JobSubmitted

log = logging.getLogger("hybridq.status.schedules")
DUE_BATCH = 100


def origin(schedule_id: UUID) -> str:
    return f"schedule:{schedule_id}"


async def create(
    uow: UnitOfWork,
    *,
    name: str,
    cadence: Cadence,
    job: dict[str, Any],
    enabled: bool,
    now: datetime,
) -> Schedule:
    schedule = Schedule(
        schedule_id=uuid4(),
        name=name,
        cadence=cadence,
        job=job,
        enabled=enabled,
        next_run_at=cadence.next_after(now) if enabled else None,
    )
    await uow.schedules.add(schedule)
    return schedule


async def set_enabled(uow: UnitOfWork, schedule_id: UUID, enabled: bool, now: datetime) -> bool:
    """Pause (no next run) or resume (next run: the first fire time after now; what fell
    in the pause is skipped). Resuming a running schedule changes nothing. False: unknown."""
    schedule = await uow.schedules.get(schedule_id, for_update=True)
    if schedule is None:
        return False
    if schedule.enabled != enabled:
        next_run_at = schedule.cadence.next_after(now) if enabled else None
        await uow.schedules.set_enabled(schedule_id, enabled, next_run_at)
    return True


async def delete(uow: UnitOfWork, schedule_id: UUID) -> bool:
    """Delete the schedule and withdraw its firings not yet published (those published
    stay: the jobs they made keep their schedule_id). False: unknown."""
    if not await uow.schedules.delete(schedule_id):
        return False
    await uow.outbox.withdraw(origin(schedule_id))
    return True


@dataclass(frozen=True)
class Firing:
    schedule_id: UUID
    job_id: UUID
    fire_time: datetime
    caught_up: bool  # a missed fire time, fired late (hybridq was down)


async def fire_due(units: UnitOfWorkFactory, now: datetime) -> list[Firing]:
    """Claim the firing of every schedule due at `now`, each in its own transaction."""
    async with units() as uow:
        due = await uow.schedules.due(now, DUE_BATCH)
    firings = []
    for schedule in due:
        async with units() as uow:
            fired = await _claim(uow, schedule, now)
        if fired is not None:
            firings.append(fired)
    return firings


async def _claim(uow: UnitOfWork, schedule: Schedule, now: datetime) -> Firing | None:
    assert schedule.next_run_at is not None
    cadence = schedule.cadence
    next_run_at: datetime | None
    try:
        fire = cadence.latest_due(schedule.next_run_at, now)
        next_run_at = cadence.next_after(fire)  # a period stays on its grid
        if next_run_at <= now:
            next_run_at = cadence.next_after(now)
    except BadCadence as exc:  # a cron with no future time: stop it, say why
        log.error(
            "schedule stopped", extra={"schedule_id": str(schedule.schedule_id), "error": str(exc)}
        )
        fire, next_run_at = schedule.next_run_at, None
    if not await uow.schedules.claim(schedule, next_run_at, fire):
        return None  # another replica claimed it, or it was paused or deleted
    job_id = job_id_for(schedule.schedule_id, fire)
    try:
        job = JobSubmitted(**schedule.job, job_id=job_id)
    except ValidationError as exc:  # validated at creation; only a schema change gets here
        log.error("schedule job template no longer valid", extra={"error": str(exc)})
        return None
    await uow.schedules.add_firing(schedule.schedule_id, job_id, fire)
    await uow.outbox.add(messages.submission(job), origin(schedule.schedule_id))
    return Firing(schedule.schedule_id, job_id, fire, fire > schedule.next_run_at)

"""The worker fleet: heartbeats and attempt leases, as workers report them."""

from __future__ import annotations

from services.status.service_layer.unit_of_work import UnitOfWork
from shared.contracts.workers import (
    AnyWorkerMessage,
    AttemptLeased,
    AttemptReleased,
    WorkerHeartbeat,
)

FORGET_AFTER_DAYS = 1.0


async def record(uow: UnitOfWork, message: AnyWorkerMessage) -> None:
    """A heartbeat (the worker's row, and the leases of the attempts it lists renewed), a
    lease taken, or a lease released."""
    if isinstance(message, WorkerHeartbeat):
        await uow.workers.heartbeat(message)
        held = [(r.job_id, r.attempt) for r in message.running]
        if held:
            await uow.leases.renew(message.instance, held)
    elif isinstance(message, AttemptLeased):
        await uow.leases.add(message)
    elif isinstance(message, AttemptReleased):
        await uow.leases.release(message.job_id, message.attempt, message.instance)

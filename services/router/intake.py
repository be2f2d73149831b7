"""Intake use case: validate, de-duplicate, place, and dispatch or schedule a job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import NAMESPACE_URL, UUID, uuid5

from shared.bus import Bus
from shared.contracts.events import (
    Event,
    FieldError,
    JobRejected,
    JobRouted,
    JobScheduled,
    JobSubmittedEvent,
)
from shared.contracts.jobs import JobSubmitted, PlacedJob
from shared.contracts.parsing import InvalidJob, parse_job_submitted
from shared.errors import UnprocessableMessage
from shared.metrics import ROUTER_OUTCOMES
from shared.placement.decision import Placement, Refusal, place
from shared.placement.rules import Rules

from .dedup import Ledger, intake_key

log = logging.getLogger("hybridq.router")


class Outcome(StrEnum):
    """What the router did with one intake or due message (logs and metrics)."""

    ROUTED = "routed"
    SCHEDULED = "scheduled"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead_lettered"
    FORBIDDEN = "forbidden"
    CANCELLED = "cancelled"
    WAITING = "waiting"
    DISPATCHED = "dispatched"


def counted(outcome: Outcome, rule: str = "") -> Outcome:
    ROUTER_OUTCOMES.labels(outcome=outcome.value, rule=rule).inc()
    return outcome


def event_id(job_id: UUID, what: str) -> UUID:
    """Deterministic event ids: a redelivered intake message re-emits the same events."""
    return uuid5(NAMESPACE_URL, f"hybridq:{job_id}:{what}")


class Intake:
    def __init__(
        self,
        bus: Bus,
        rules: Rules,
        private_backlog: Callable[[], int],
        ledger: Ledger,
        clock: Callable[[], datetime],
    ) -> None:
        self.bus = bus
        self.rules = rules
        self.private_backlog = private_backlog
        self.ledger = ledger
        self.clock = clock

    async def handle(self, body: bytes, source_queue: str, *, redelivered: bool = False) -> Outcome:
        """Process one intake message; returns what happened (counted in the metrics)."""
        try:
            job = parse_job_submitted(body)
        except UnprocessableMessage as exc:
            await self._unprocessable(body, exc, source_queue)
            return counted(Outcome.DEAD_LETTERED, exc.reason)
        key = intake_key(job.job_id)
        if not await self.ledger.acquire(key, redelivered=redelivered):
            log.info("duplicate job_id: not run again", extra={"job_id": str(job.job_id)})
            return counted(Outcome.DUPLICATE)
        try:
            outcome = await self._accept(job)
        except BaseException:
            await self.ledger.release(key)
            raise
        await self.ledger.finish(key)
        return outcome

    async def _accept(self, job: JobSubmitted) -> Outcome:
        """Place the job; its events (one batch with other jobs' of this moment) and its
        dispatch or parking are published together and all confirmed before the intake
        delivery is acked."""
        now = self.clock()
        submitted = JobSubmittedEvent(
            event_id=event_id(job.job_id, "submitted"), occurred_at=now, **job.spec_fields()
        )
        decision = place(job, self.rules, self.private_backlog)
        if isinstance(decision, Refusal):
            rejected = JobRejected(
                event_id=event_id(job.job_id, "rejected"),
                job_id=job.job_id,
                reason=decision.reason,
                errors=[FieldError(field=decision.field, message=decision.reason)],
            )
            await self.bus.emit(submitted, rejected)
            log.info("rejected by policy", extra={"job_id": str(job.job_id)})
            return counted(Outcome.REJECTED)
        run_at = self._run_at(job, now)
        placed = PlacedJob(
            **job.model_dump(),
            site=decision.site,
            rule=decision.rule,
            reason=decision.reason,
            run_at=run_at,
            announce=run_at is not None,
        )
        if run_at is not None:
            scheduled = JobScheduled(
                event_id=event_id(job.job_id, "scheduled"),
                job_id=job.job_id,
                site=decision.site,
                not_before=run_at,
            )
            await placed_with_events(self.bus, self.bus.delay(placed, now), submitted, scheduled)
            return counted(Outcome.SCHEDULED, decision.rule)
        routed = routed_event(placed, decision)
        await placed_with_events(self.bus, self.bus.dispatch(placed), submitted, routed)
        log.info(
            "routed",
            extra={"job_id": str(job.job_id), "site": decision.site.value, "rule": decision.rule},
        )
        return counted(Outcome.ROUTED, decision.rule)

    async def _unprocessable(
        self, body: bytes, exc: UnprocessableMessage, source_queue: str
    ) -> None:
        job_id = UUID(exc.job_id) if exc.job_id is not None else None
        # Asked before anything is published, so a database outage hands it back cleanly.
        accepted = job_id is not None and await self.ledger.known(intake_key(job_id))
        await self.bus.dead_letter(
            body,
            reason=exc.reason,
            source_queue=source_queue,
            detail=exc.detail,
            job_id=exc.job_id,
        )
        if job_id is None or accepted:
            # accepted: a malformed copy of an accepted job is dead-lettered, but it must
            # not change that job (contract 3.1), so no JobRejected.
            return
        errors = exc.errors if isinstance(exc, InvalidJob) else []
        await self.bus.event(
            JobRejected(
                event_id=event_id(job_id, "rejected"),
                job_id=job_id,
                reason=exc.detail,
                errors=errors,
            )
        )

    @staticmethod
    def _run_at(job: JobSubmitted, now: datetime) -> datetime | None:
        if job.not_before is not None and job.not_before > now:
            return job.not_before
        if job.delay_seconds > 0:
            return now + timedelta(seconds=job.delay_seconds)
        return None


async def placed_with_events(bus: Bus, placing: Awaitable[None], *events: Event) -> None:
    """Publish a job's dispatch (or parking) and its events at once, both confirmed before
    the delivery is acked. Should only the events fail once the job is placed, they are
    sent again rather than the delivery handed back, which would place the job twice."""
    emitted = bus.emit(*events)
    try:
        await placing
    except BaseException:
        await asyncio.gather(emitted, return_exceptions=True)
        raise
    try:
        await emitted
    except Exception:
        log.warning("events of a placed job not confirmed; sending them again", exc_info=True)
        await bus.emit(*events)


def routed_event(placed: PlacedJob, decision: Placement | None = None) -> JobRouted:
    return JobRouted(
        event_id=event_id(placed.job_id, "routed"),
        job_id=placed.job_id,
        site=placed.site,
        rule=placed.rule,
        reason=placed.reason,
        priority=placed.priority,
        private_backlog=decision.private_backlog if decision else None,
    )

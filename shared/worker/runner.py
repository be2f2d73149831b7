"""The worker use case: run one attempt of a placed job and say what happened."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

from pydantic import ValidationError

from shared.bus import Bus
from shared.cancellations import Cancellations
from shared.contracts.events import (
    JobStarted,
    JobSucceeded,
)
from shared.contracts.jobs import DataClassification, PlacedJob, Site
from shared.contracts.parsing import readable_attempt, readable_job_id
from shared.contracts.workers import RunningAttempt
from shared.dead_letters import DeadLetterReason
from shared.errors import HandlerProcessDied, HandlerRaised, JobTimeout, PermanentError
from shared.holding import through_trouble
from shared.metrics import WORKER_ATTEMPTS, WORKER_DURATION
from shared.retries import RetryPolicy
from shared.worker.executors import Executor
from shared.worker.failing import dead_letter, fail_attempt
from shared.worker.handlers import JobContext
from shared.worker.leases import Leases, Leasing
from shared.worker.link import LoopLink

SettleEarly = Callable[[], Awaitable[None]]
SLOT_WAIT_SECONDS = 5.0
PARK_SECONDS = 5.0


log = logging.getLogger("hybridq.worker")


class Runner:
    def __init__(
        self,
        *,
        site: Site,
        bus: Bus,
        executor: Executor,
        cancellations: Cancellations,
        clock: Callable[[], datetime],
        worker_name: str,
        retry_base_seconds: float,
        retry_max_seconds: float,
        rng: random.Random | None = None,
        leasing: Leasing | None = None,
        instance: UUID | None = None,
        concurrency: int = 4,
    ) -> None:
        self.site = site
        self.bus = bus
        self.executor = executor
        self.cancellations = cancellations
        self.clock = clock
        self.worker_name = worker_name
        self.retry_base = retry_base_seconds
        self.retry_max = retry_max_seconds
        self.rng = rng or random.Random()
        self._slots = asyncio.Semaphore(concurrency)
        self.slot_wait_seconds = SLOT_WAIT_SECONDS
        self.instance = instance or uuid4()
        self.leases = Leases(
            bus,
            worker_name,
            self.instance,
            site,
            leasing or Leasing(),
            RetryPolicy(retry_base_seconds, retry_max_seconds),
        )
        self.running: dict[UUID, asyncio.Task[dict[str, Any]]] = {}
        self.attempts: dict[UUID, RunningAttempt] = {}
        self._handing_back: set[UUID] = set()

    # -- entry point ----------------------------------------------------------------
    async def handle(
        self,
        body: bytes,
        source_queue: str,
        *,
        redelivered: bool = False,
        settle_early: SettleEarly | None = None,
        alive: Callable[[], bool] = lambda: True,
    ) -> str:
        """`alive`: the delivery can still be settled. Once an attempt has run, its outcome
        is published again through broker trouble while it can (shared/holding.py), so the
        attempt is never run a second time for a publish that failed."""
        try:
            job = PlacedJob.model_validate_json(body)
        except ValidationError as exc:
            return await self._refuse(body, source_queue, DeadLetterReason.SCHEMA, str(exc))
        job_id = str(job.job_id)
        if self.site is Site.PUBLIC and job.data_classification is DataClassification.CONFIDENTIAL:
            return await self._refuse(
                body,
                source_queue,
                DeadLetterReason.RESIDENCY,
                "confidential job refused by the public worker",
            )
        if not self.executor.knows(job.job_type):
            return await self._refuse(
                body,
                source_queue,
                DeadLetterReason.UNKNOWN_JOB_TYPE,
                f"the {self.site.value} site has no handler for {job.job_type!r}",
            )
        await self.cancellations.settled()  # every cancel confirmed before now is known
        if self.cancellations.is_cancelled(job.job_id):
            log.info("cancelled before start: not run", extra={"job_id": job_id})
            return "cancelled"
        now = self.clock()
        if job.run_at is not None and job.run_at > now + timedelta(seconds=0.05):
            await self.bus.delay(job, now)  # arrived early (hand-published): wait properly
            return "delayed"
        if redelivered:
            return await self._failed(
                job,
                "attempt interrupted: the worker holding it was lost",
                permanent=False,
                alive=alive,
            )
        return await self._in_a_slot(job, settle_early, alive)

    async def _in_a_slot(
        self, job: PlacedJob, settle_early: SettleEarly | None, alive: Callable[[], bool]
    ) -> str:
        """At most `concurrency` attempts at once, leased ones included. A leased attempt
        no longer holds a delivery, so the broker may deliver more than there are slots:
        such a job waits briefly, then is parked (same attempt) through a delay tier
        rather than held unacked for as long as a long attempt runs."""
        try:
            async with asyncio.timeout(self.slot_wait_seconds):
                await self._slots.acquire()
        except TimeoutError:
            now = self.clock()
            later = now + timedelta(seconds=PARK_SECONDS)
            await self.bus.delay(job.model_copy(update={"run_at": later}), now)
            log.info("every slot is busy: parked", extra={"job_id": str(job.job_id)})
            return "parked"
        try:
            return await self._attempt(job, settle_early, alive)
        finally:
            self._slots.release()

    # -- one attempt ----------------------------------------------------------------
    async def _attempt(
        self, job: PlacedJob, settle_early: SettleEarly | None, alive: Callable[[], bool]
    ) -> str:
        started = time.monotonic()
        # in the next event batch; the attempt does not wait for its confirm, the delivery's
        # ack does (below, with the outcome's: contract §3.2)
        start = JobStarted(
            job_id=job.job_id, site=self.site, attempt=job.attempt, worker=self.worker_name
        )
        announced = [self.bus.emit(start)]

        async def announce() -> None:
            try:
                await announced[-1]
            except Exception:
                announced.append(self.bus.emit(start))  # the same event, for the next try
                raise

        timeout = job.timeout_seconds or self.executor.default_timeout(job.job_type)
        if settle_early is not None and self.leases.needed(timeout):
            await announce()  # a leased attempt is acked before it runs: started is known
            await self.leases.take(job)
            await settle_early()  # the broker no longer holds it: no consumer timeout
            alive = _settled  # the lease holds it now: its outcome is held whatever the channel
        link = LoopLink(self.bus, job)
        ctx = JobContext(
            job.job_id,
            job.job_type,
            job.params,
            job.attempt,
            link,
            job.data_classification.value,
        )
        task = asyncio.create_task(self._run(ctx, link, timeout), name=f"job-{job.job_id}")
        self.running[job.job_id] = task
        self.attempts[job.job_id] = RunningAttempt(
            job_id=job.job_id, attempt=job.attempt, job_type=job.job_type, started_at=self.clock()
        )
        self.cancellations.watch(job.job_id, task)
        try:
            await asyncio.wait({task})
        finally:
            self.running.pop(job.job_id, None)
            self.attempts.pop(job.job_id, None)
            self.cancellations.unwatch(job.job_id)
        try:
            duration = time.monotonic() - started
            outcome = await self._settle(job, task, duration, alive)
            await through_trouble(announce, alive, f"start of job {job.job_id}")
        finally:
            await self.leases.release(job)
        WORKER_ATTEMPTS.labels(self.site.value, job.job_type, outcome).inc()
        WORKER_DURATION.labels(self.site.value, job.job_type, outcome).observe(
            time.monotonic() - started
        )
        return outcome

    async def _run(self, ctx: JobContext, link: LoopLink, timeout: float) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout):
                result = await self.executor.run(ctx)
                await link.settled()  # every child submission confirmed before success
                return result
        except TimeoutError as exc:
            raise JobTimeout(f"timeout: the attempt ran longer than {timeout:g}s") from exc

    async def _settle(
        self,
        job: PlacedJob,
        task: asyncio.Task[dict[str, Any]],
        duration: float,
        alive: Callable[[], bool],
    ) -> str:
        if task.cancelled():
            if job.job_id in self._handing_back:
                self._handing_back.discard(job.job_id)
                await self.bus.dispatch(job)  # same attempt, to another worker
                log.info("handed back on shutdown", extra={"job_id": str(job.job_id)})
                return "handed_back"
            log.info("stopped: job cancelled", extra={"job_id": str(job.job_id)})
            return "cancelled"
        exc = task.exception()
        if exc is None:
            succeeded = JobSucceeded(
                event_id=uuid5(NAMESPACE_URL, f"hybridq:{job.job_id}:{job.attempt}:succeeded"),
                job_id=job.job_id,
                site=self.site,
                attempt=job.attempt,
                result=task.result(),
                duration_seconds=round(duration, 6),
            )
            await through_trouble(
                lambda: self.bus.event(succeeded), alive, f"success of job {job.job_id}"
            )
            log.info("succeeded", extra={"job_id": str(job.job_id), "attempt": job.attempt})
            return "succeeded"
        permanent = isinstance(exc, PermanentError)
        described = isinstance(exc, JobTimeout | HandlerRaised | HandlerProcessDied)
        error = str(exc) if described else f"{type(exc).__name__}: {exc}"
        return await self._failed(job, error, permanent=permanent, alive=alive)

    async def _failed(
        self, job: PlacedJob, error: str, *, permanent: bool, alive: Callable[[], bool]
    ) -> str:
        policy = RetryPolicy(self.retry_base, self.retry_max)
        return await fail_attempt(
            self.bus,
            job,
            error,
            permanent=permanent,
            now=self.clock(),
            policy=policy,
            rng=self.rng,
            alive=alive,
        )

    # -- refusals and dead letters -------------------------------------------------
    async def _refuse(self, body: bytes, source_queue: str, reason: str, detail: str) -> str:
        data = _json_of(body)
        job_id, attempts = readable_job_id(data), readable_attempt(data)
        await dead_letter(self.bus, body, job_id, source_queue, reason, detail, attempts)
        return f"refused:{reason}"

    # -- graceful drain -------------------------------------------------------------
    async def drain(self, timeout: float) -> None:
        """Let running attempts finish for up to `timeout` s, then hand the rest back."""
        log.info("draining", extra={"running": len(self.running), "drain_seconds": timeout})
        if self.running:
            await asyncio.wait(list(self.running.values()), timeout=timeout)
        left = list(self.running.items())
        for job_id, task in left:
            log.info("handing back on shutdown", extra={"job_id": str(job_id)})
            self._handing_back.add(job_id)
            task.cancel()
        if left:
            await asyncio.wait([task for _, task in left], timeout=3)


def _settled() -> bool:
    """A leased attempt's delivery is acked: nothing is lost with its channel."""
    return True


def _json_of(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
